package plugin

import "sluice/internal/reason"

// AnswerWithBody is [Request.Answer] with a body: the request is answered locally with
// status, the fields added by AddResponseField (a Content-Type among them) and body, which
// must stay unchanged until the filter has returned. forward-auth passes an auth service's
// denial to the client this way. A RequestFilter returns what AnswerWithBody returns.
func (r *Request) AnswerWithBody(status int, code reason.Code, body []byte) error {
	r.answerBody = body
	return r.Answer(status, code)
}
