package staticresponse

// Config is the static-response plugin's config.
type Config struct {
	// Status is the answer's status, 200 to 599. Default 200.
	Status int `yaml:"status"`
	// Headers are the answer's header fields (name: value). Content-Type defaults to
	// "text/plain; charset=utf-8" when there is a body. Default none.
	Headers map[string]string `yaml:"headers"`
	// Body is the answer's body, inline. Default "": none (Content-Length: 0). Not with
	// body_file.
	Body string `yaml:"body"`
	// BodyFile is a file whose content is the body, read once when the config is loaded (a
	// reload reads it again; a missing file is a config error), relative to the config
	// file's directory. At most 1 MiB. Not with body.
	BodyFile string `yaml:"body_file"`
}
