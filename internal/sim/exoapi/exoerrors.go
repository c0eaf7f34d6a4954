package exoapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Detail encodings of error.details[].message (research §2.3). The real service has been seen using both;
// which one a caller gets is not known, so the simulator makes it a switch that clients must survive.
const (
	// DetailPipe renders `ErrorId|ExceptionType|Text` (the default).
	DetailPipe = "pipe"
	// DetailJSON renders a JSON object inside the string: {"Message":..,"TypeName":..,"StackTrace":null,"InnerError":null}.
	DetailJSON = "json"
	// DetailAuto uses JSON when the request carries `X-ResponseFormat: json` and pipe otherwise — the
	// hypothesis in research §2.3. Options.DetailEncoding stays authoritative: only "auto" looks at the header.
	DetailAuto = "auto"
)

// fakeDC is the domain controller named in not-found texts, like the service's 'XXXPR01A001DC001...' names.
const fakeDC = "NAMPR11A004DC001.NAMPR11A004.PROD.OUTLOOK.COM"

// cmdletError is a failure reported in the OData error envelope.
type cmdletError struct {
	status        int
	errorID       string // e.g. Ex6F9304; may be empty
	exceptionType string
	message       string
	// plain errors are protocol-level refusals (malformed body, bad nextLink): error.message carries the
	// text and there are no details, as OData does for requests that never reach a cmdlet.
	plain      bool
	retryAfter time.Duration
}

func notFoundErr(identity string) *cmdletError {
	return &cmdletError{status: http.StatusNotFound, errorID: "Ex6F9304",
		exceptionType: "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
		message:       fmt.Sprintf("The operation couldn't be performed because object '%s' couldn't be found on '%s'.", identity, fakeDC)}
}

func ambiguousErr(identity string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest,
		exceptionType: "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
		message:       fmt.Sprintf("The operation couldn't be performed because '%s' matches multiple entries.", identity)}
}

// dirSyncErr is EXO's refusal to write an attribute Entra Connect owns (research §2.4, §5).
func dirSyncErr(cmdlet, param, name string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, exceptionType: "System.InvalidOperationException",
		message: fmt.Sprintf("The operation on mailbox \"%s\" failed because it's out of the current user's write scope. "+
			"The action '%s', '%s', can't be performed on the object '%s' because the object is being synchronized "+
			"from your on-premises organization. This action should be performed on the object in your on-premises organization.",
			name, cmdlet, param, name)}
}

func bindingErr(msg string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest,
		exceptionType: "System.Management.Automation.ParameterBindingException", message: msg}
}

func paramNotFoundErr(name string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, errorID: "NamedParameterNotFound",
		exceptionType: "System.Management.Automation.ParameterBindingException",
		message:       fmt.Sprintf("A parameter cannot be found that matches parameter name '%s'.", name)}
}

func commandNotFoundErr(name string) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, errorID: "CommandNotFoundException",
		exceptionType: "System.Management.Automation.CommandNotFoundException",
		message: fmt.Sprintf("The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. "+
			"Check the spelling of the name, or if a path was included, verify that the path is correct and try again.", name)}
}

func badRequest(format string, args ...any) *cmdletError {
	return &cmdletError{status: http.StatusBadRequest, plain: true, message: fmt.Sprintf(format, args...)}
}

// statusCodeName is error.code: the HTTP status name without spaces (NotFound, BadRequest, ...).
func statusCodeName(status int) string {
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

// detailMessage encodes the cmdlet's error in the selected encoding.
func (ce *cmdletError) detailMessage(encoding string) string {
	if encoding == DetailJSON {
		b, _ := json.Marshal(struct {
			Message    string
			TypeName   string
			StackTrace any
			InnerError any
		}{ce.message, ce.exceptionType, nil, nil})
		return string(b)
	}
	return ce.errorID + "|" + ce.exceptionType + "|" + ce.message
}

// body renders the OData error envelope (research §2.3).
func (ce *cmdletError) body(encoding string) []byte {
	b := []byte(`{"error":{"code":`)
	b = appendJSONString(b, statusCodeName(ce.status))
	if ce.plain {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, ce.message)
		return append(b, `}}`...)
	}
	detailCode := "Client"
	if ce.status >= 500 {
		detailCode = "Server"
	}
	b = append(b, `,"message":"Error executing cmdlet","details":[{"code":`...)
	b = appendJSONString(b, detailCode)
	b = append(b, `,"target":"","message":`...)
	b = appendJSONString(b, ce.detailMessage(encoding))
	b = append(b, `}],"innererror":{"message":"Error executing cmdlet","type":"Microsoft.Exchange.Admin.OData.Core.ODataServiceException",`+
		`"stacktrace":"   at Microsoft.Exchange.AdminApi.CommandInvocation.CommandInvocation.InvokeCommand(ICommandInvocationContext context)",`+
		`"internalexception":{"message":"Exception of type 'Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException' was thrown.",`+
		`"type":"Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException","stacktrace":""}}},`+
		`"adminapi.warnings@odata.type":"#Collection(String)","@adminapi.warnings":[]}`...)
	return b
}

// exceptionShortName is the last dotted part of the exception type, sent as X-ExceptionType.
func (ce *cmdletError) exceptionShortName() string {
	t := ce.exceptionType
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		t = t[i+1:]
	}
	return t
}
