package daemon

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// DefaultRPCAuthFile is where `serfd migrate` puts a Serf rpc_auth token.
const DefaultRPCAuthFile = "/etc/serf/rpc-auth"

// Migrate writes to w the HCL configuration equivalent to the Serf JSON
// configuration at path: the same node, with event_handlers as handler
// blocks that run the same commands, and as comments what serfd does
// differently. Problems in the JSON come back as a *ConfigError, and then
// nothing is written. note, when not empty, is an instruction for the
// operator (where rpc_auth's token must go).
func Migrate(path string, w io.Writer) (note string, err error) {
	src, err := readTrustedConfig(path)
	if err != nil {
		return "", &ConfigError{Problems: []string{err.Error()}}
	}
	s := parseSerfJSON(path, src, func(string) bool { return false })
	if len(s.problems) > 0 {
		return "", &ConfigError{Problems: s.problems}
	}
	out, note := renderHCL(path, s)
	_, err = w.Write(out)
	return note, err
}

// renderHCL writes s as HCL. authNote says how to keep rpc_auth's token,
// which HCL reads from a file of its own.
func renderHCL(path string, s *serfJSON) ([]byte, string) {
	fc := s.fc
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	comment := func(body *hclwrite.Body, text string) {
		for line := range strings.SplitSeq(text, "\n") {
			body.AppendUnstructuredTokens(hclwrite.Tokens{{Type: hclsyntax.TokenComment, Bytes: []byte("# " + line + "\n")}})
		}
	}
	comment(b, fmt.Sprintf("serfd configuration made by `serfd migrate` from %s.\nCheck it with: serfd -check -config FILE", path))
	for _, sk := range scalarKeyList {
		if v, ok := sk.value(fc); ok {
			b.SetAttributeValue(sk.name, v)
		}
	}
	if len(fc.Tags) > 0 {
		tags := map[string]cty.Value{}
		for k, v := range fc.Tags {
			tags[k] = cty.StringVal(v)
		}
		b.SetAttributeValue("tags", cty.ObjectVal(tags))
	}
	if len(fc.Join) > 0 {
		var join []cty.Value
		for _, j := range fc.Join {
			join = append(join, cty.StringVal(j))
		}
		b.SetAttributeValue("join", cty.ListVal(join))
	}

	if m := fc.MDNS; m != nil {
		mb := b.AppendNewBlock("mdns", nil).Body()
		if m.Interface != nil {
			mb.SetAttributeValue("interface", cty.StringVal(*m.Interface))
		}
		if m.DisableIPv4 != nil {
			mb.SetAttributeValue("disable_ipv4", cty.BoolVal(*m.DisableIPv4))
		}
		if m.DisableIPv6 != nil {
			mb.SetAttributeValue("disable_ipv6", cty.BoolVal(*m.DisableIPv6))
		}
	}
	// A Serf agent always serves its RPC; so does the migrated node.
	b.AppendNewline()
	comment(b, "Serf's RPC, for the serf CLI and RPC clients (a Serf agent always serves it).")
	rb := b.AppendNewBlock("rpc", nil).Body()
	addr := defaultRPCAddr
	if fc.RPC != nil && fc.RPC.Address != nil {
		addr = *fc.RPC.Address
	}
	rb.SetAttributeValue("address", cty.StringVal(addr))
	var authNote string
	if fc.RPC != nil && fc.RPC.auth != nil {
		rb.SetAttributeValue("auth_file", cty.StringVal(DefaultRPCAuthFile))
		authNote = fmt.Sprintf("serfd migrate: rpc_auth becomes auth_file %s; write the token (rpc_auth of %s) there, readable only by serfd's user:\n"+
			"  install -m 0600 -o serf -g serf /dev/null %s && printf '%%s' \"$TOKEN\" > %s",
			DefaultRPCAuthFile, path, DefaultRPCAuthFile, DefaultRPCAuthFile)
	}
	if fc.Log != nil && fc.Log.Level != nil {
		b.AppendNewline()
		b.AppendNewBlock("log", nil).Body().SetAttributeValue("level", cty.StringVal(strings.ToLower(*fc.Log.Level)))
	}
	for _, h := range fc.Handler {
		b.AppendNewline()
		hb := b.AppendNewBlock("handler", []string{h.Name}).Body()
		var events []cty.Value
		for _, e := range h.Events {
			events = append(events, cty.StringVal(e))
		}
		hb.SetAttributeValue("events", cty.ListVal(events))
		hb.SetAttributeValue("command", cty.StringVal(*h.Command))
	}
	if len(s.notes) > 0 {
		b.AppendNewline()
		comment(b, "What serfd does differently for these keys:")
		for _, n := range s.notes {
			comment(b, "  "+n)
		}
	}
	out := hclwrite.Format(f.Bytes())
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, authNote
}
