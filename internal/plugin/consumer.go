package plugin

import (
	"fmt"
	"slices"

	"sluice/internal/config"
)

// Consumer is a named API client (config consumers[]). Consumers are built once per config
// and immutable; auth filters identify one per request with [Request.SetConsumer].
type Consumer struct {
	// Name is the consumer's unique name.
	Name string
	// Groups are the groups it belongs to.
	Groups []string
	// Labels are its free-form labels.
	Labels map[string]string

	creds map[string]any // by plugin kind name: what Kind.Credential decoded
}

// InGroup reports whether c belongs to group g.
func (c *Consumer) InGroup(g string) bool { return slices.Contains(c.Groups, g) }

// Credential returns what the plugin kind named plugin decoded from c's credentials for it,
// nil when c has none for it.
func (c *Consumer) Credential(plugin string) any { return c.creds[plugin] }

// buildConsumers decodes the consumers of cfg and their credentials, by the kind each
// credentials key names.
func buildConsumers(cfg *config.Config) ([]*Consumer, []error) {
	var errs []error
	out := make([]*Consumer, 0, len(cfg.Consumers))
	for i, cc := range cfg.Consumers {
		c := &Consumer{Name: cc.Name, Groups: cc.Groups, Labels: cc.Labels, creds: map[string]any{}}
		for _, name := range sortedKeys(cc.Credentials) {
			y := cc.Credentials[name]
			n := config.Node{File: cfg.File, Path: fmt.Sprintf("consumers[%d].credentials.%s", i, name),
				Context: fmt.Sprintf("consumer %q: plugin %s: ", cc.Name, name), Y: &y, Secret: true}
			k, ok := Lookup(name)
			if !ok || k.Credential == nil {
				errs = append(errs, n.Errorf("", "no auth plugin takes credentials by this name (auth plugins: %v)", credentialKinds()))
				continue
			}
			v, err := k.Credential(n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c.creds[name] = v
		}
		out = append(out, c)
	}
	return out, errs
}

func credentialKinds() []string {
	var out []string
	for _, n := range Names() {
		if k, _ := Lookup(n); k.Credential != nil {
			out = append(out, n)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
