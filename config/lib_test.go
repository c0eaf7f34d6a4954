package config

import "github.com/exo-worker/worker/jobs/library"

// testLib is the worker's own job library: the configuration is tested with the jobs it really reads.
var testLib = func() JobLibrary {
	l, err := library.New()
	if err != nil {
		panic(err)
	}
	return l
}()
