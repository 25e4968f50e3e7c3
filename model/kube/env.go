package kube

import (
	"encoding/base64"
	"strings"

	"github.com/faultline-dev/faultline/model"
	"github.com/faultline-dev/faultline/model/hostref"
)

// dataObject is a ConfigMap or Secret: its keys and values, each with the line it is written on.
type dataObject struct {
	obj     *object
	entries []dataEntry
}

type dataEntry struct {
	key, value string
	src        model.Source
}

func (d *dataObject) get(key string) (dataEntry, bool) {
	for _, e := range d.entries {
		if e.key == key {
			return e, true
		}
	}
	return dataEntry{}, false
}

// readData indexes a ConfigMap or Secret by namespace/name. Secret data is base64; values that do
// not decode are left out (they are only read to find hosts, never copied).
func (im *importer) readData(o *object, into map[string]*dataObject, secret bool) {
	key := o.namespace + "/" + o.name
	if _, dup := into[key]; dup || o.name == "" {
		return
	}
	d := &dataObject{obj: o}
	for _, p := range o.root.get("data").pairs() {
		v := p.val.str()
		if secret {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
			if err != nil {
				continue
			}
			v = string(b)
		}
		d.entries = append(d.entries, dataEntry{key: p.key, value: v, src: p.val.src()})
	}
	if secret {
		for _, p := range o.root.get("stringData").pairs() {
			d.entries = append(d.entries, dataEntry{key: p.key, value: p.val.str(), src: p.val.src()})
		}
	}
	into[key] = d
}

// lookupData finds a ConfigMap or Secret a workload refers to, warning once when the input lacks
// a ConfigMap (unless the reference is optional).
func (im *importer) lookupData(from map[string]*dataObject, what, ns string, ref node) *dataObject {
	name := ref.get("name").str()
	if name == "" {
		return nil
	}
	if d := from[ns+"/"+name]; d != nil {
		return d
	}
	opt := ref.get("optional")
	if opt.present() && opt.str() == "true" || what == "Secret" {
		// Secrets are rarely committed with the manifests; their absence is the norm.
		return nil
	}
	if k := what + "/" + ns + "/" + name; !im.missingData[k] {
		im.missingData[k] = true
		im.warnf(ref.src(), "%s %s is not in the input; hosts it may name were not read", what, name)
	}
	return nil
}

// secretWords mark variable names that hold credentials.
var secretWords = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "CREDENTIAL"}

// notSecretSuffixes mark variables about a secret rather than holding one (DB_PASSWORD_FILE,
// TOKEN_TTL, JWT_SECRET_NAME).
var notSecretSuffixes = []string{"_FILE", "_PATH", "_DIR", "_NAME", "_TTL", "_EXPIRY", "_EXPIRATION", "_TIMEOUT", "_LENGTH", "_ENABLED", "_ENABLE", "_HEADER", "_TYPE", "_REF"}

// secretLooking reports whether a variable name says it holds a credential.
func secretLooking(name string) bool {
	u := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	for _, s := range notSecretSuffixes {
		if strings.HasSuffix(u, s) {
			return false
		}
	}
	if hostref.KeyHoldsHost(u) {
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}

// literalSecret reports whether a value written in configuration is a credential worth flagging:
// not empty, not a switch, not a reference to another variable.
func literalSecret(name, value string) bool {
	v := strings.TrimSpace(value)
	if v == "" || !secretLooking(name) {
		return false
	}
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "none", "null":
		return false
	}
	return !(strings.HasPrefix(v, "$(") && strings.HasSuffix(v, ")") && strings.Count(v, "$(") == 1)
}

// config accumulates what one workload's configuration says.
type config struct {
	wl      *workload
	secrets []model.Secret
	seen    map[[2]string]bool
}

func (c *config) secret(name, from string, src model.Source) {
	k := [2]string{name, from}
	if name == "" || c.seen[k] {
		return
	}
	c.seen[k] = true
	c.secrets = append(c.secrets, model.Secret{Name: name, From: from, Source: src})
}

// readConfiguration reads a workload's containers (environment, envFrom, command and args) and
// volumes for the hosts they name and the secrets they receive.
func (im *importer) readConfiguration(wl *workload) {
	c := &config{wl: wl, seen: map[[2]string]bool{}}
	for _, group := range []string{"containers", "initContainers"} {
		for _, ct := range wl.pod.get(group).list() {
			if !meshContainers[ct.get("name").str()] {
				im.readContainer(c, ct)
			}
		}
	}
	for _, v := range wl.pod.get("volumes").list() {
		if s := v.get("secret"); s.present() {
			c.secret(s.get("secretName").str(), "file", v.src())
		}
		for _, p := range v.get("projected").get("sources").list() {
			if s := p.get("secret"); s.present() {
				c.secret(s.get("name").str(), "file", p.src())
			}
		}
	}
	if len(c.secrets) > 0 {
		switch wl.ck {
		case model.KindService:
			if s := im.b.Service(wl.name); s != nil {
				s.Secrets = append(s.Secrets, c.secrets...)
			}
		case model.KindDatastore:
			// A database's root password written in the manifest is a plaintext secret too.
			if d := im.b.Datastore(wl.name); d != nil {
				d.Secrets = append(d.Secrets, c.secrets...)
			}
		case model.KindBroker:
			if br := im.b.Broker(wl.name); br != nil {
				br.Secrets = append(br.Secrets, c.secrets...)
			}
		}
	}
}

func (im *importer) readContainer(c *config, ct node) {
	wl := c.wl
	vars := map[string]string{}
	refs := func(key, value string, src model.Source) {
		for _, r := range hostref.Find(key, value) {
			im.link(wl, r, src)
		}
	}
	for _, ef := range ct.get("envFrom").list() {
		prefix := ef.get("prefix").str()
		if ref := ef.get("configMapRef"); ref.present() {
			if d := im.lookupData(im.configMaps, "ConfigMap", wl.ns, ref); d != nil {
				for _, e := range d.entries {
					name := prefix + e.key
					vars[name] = e.value
					refs(name, e.value, e.src)
					if literalSecret(name, e.value) {
						c.secret(name, "literal", e.src)
					}
				}
			}
		}
		if ref := ef.get("secretRef"); ref.present() {
			d := im.lookupData(im.secrets, "Secret", wl.ns, ref)
			if d == nil || len(d.entries) == 0 {
				c.secret(ref.get("name").str(), "secretRef", ref.src())
				continue
			}
			for _, e := range d.entries {
				name := prefix + e.key
				vars[name] = e.value
				c.secret(name, "secretRef", ref.src())
				refs(name, e.value, ref.src())
			}
		}
	}
	for _, e := range ct.get("env").list() {
		name := e.get("name").str()
		src := e.src()
		if v := e.get("value"); v.present() {
			val := expand(v.str(), vars)
			vars[name] = val
			refs(name, val, src)
			if literalSecret(name, val) {
				c.secret(name, "literal", src)
			}
			continue
		}
		from := e.get("valueFrom")
		if ref := from.get("configMapKeyRef"); ref.present() {
			if d := im.lookupData(im.configMaps, "ConfigMap", wl.ns, ref); d != nil {
				if entry, ok := d.get(ref.get("key").str()); ok {
					vars[name] = entry.value
					refs(name, entry.value, src)
					if literalSecret(name, entry.value) {
						// A credential kept in a ConfigMap is as readable as one written inline.
						c.secret(name, "literal", src)
					}
				}
			}
		}
		if ref := from.get("secretKeyRef"); ref.present() {
			c.secret(name, "secretRef", src)
			if d := im.lookupData(im.secrets, "Secret", wl.ns, ref); d != nil {
				if entry, ok := d.get(ref.get("key").str()); ok {
					vars[name] = entry.value
					refs(name, entry.value, src)
				}
			}
		}
	}
	var args []string
	var argNodes []node
	for _, key := range []string{"command", "args"} {
		for _, a := range ct.get(key).list() {
			args = append(args, expand(a.str(), vars))
			argNodes = append(argNodes, a)
		}
	}
	for _, r := range hostref.FindInArgs(args) {
		src := ct.src()
		for i, a := range args {
			if strings.Contains(strings.ToLower(a), r.Host) {
				src = argNodes[i].src()
				break
			}
		}
		im.link(wl, r, src)
	}
}

// maxExpanded bounds a value after $(VAR) expansion: variables that each repeat the one before
// would otherwise double in size with every line.
const maxExpanded = 64 << 10

// expand replaces $(VAR) with the value of a variable defined earlier in the container, as the
// kubelet does; $$ escapes a dollar; unknown references stay as written.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if b.Len() > maxExpanded {
			return s
		}
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	if b.Len() > maxExpanded {
		return s
	}
	return b.String()
}
