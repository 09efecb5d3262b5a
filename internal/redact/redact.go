// Package redact is the one place that hides the credentials a URL may
// carry before the URL goes into a message, a log line or Redis: Redis URLs
// (package redisurl) and dataset URLs (package datasrc) both use it.
//
// A URL's credentials are its userinfo (the password, or a lone user name,
// which may be a token or a password written without its colon) and the
// values of query parameters named like a secret: password, secret, token,
// key, sig/signature, credential, auth, session or policy anywhere in the
// name, case-insensitively (X-Amz-Signature, X-Amz-Credential,
// X-Amz-Security-Token, X-Goog-Signature, an Azure SAS token's sig,
// AWSAccessKeyId, Key-Pair-Id, access_token, sentinel_password…). Each is
// replaced by Marker. A fragment is replaced by Marker too (it may hold an
// OAuth token). Secrets in a URL's path cannot be told apart from a file
// name and are kept.
package redact

import (
	"net/url"
	"strings"
)

// Marker replaces every credential.
const Marker = "xxxxx"

// SecretParam reports whether a query parameter's value is a secret.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range [...]string{"password", "secret", "token", "key", "sig", "credential", "auth", "session", "policy"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// URL returns raw with its credentials replaced by Marker (see the package
// doc). It works on strings url.Parse rejects too; a string without
// credentials is returned unchanged.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return unparsed(raw)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Marker)
		} else {
			u.User = url.User(Marker)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if SecretParam(k) {
				q.Set(k, Marker)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = Marker, ""
	}
	return u.String()
}

// HasSecrets reports whether raw carries a credential URL would hide: once
// redacted, such a URL cannot be used again (its secrets are Marker), so a
// stored URL for which HasSecrets holds must be given again by the operator.
// A string url.Parse rejects counts as having secrets: it cannot be used.
func HasSecrets(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return true
	}
	if u.User != nil || u.Fragment != "" {
		return true
	}
	for k := range u.Query() {
		if SecretParam(k) {
			return true
		}
	}
	return false
}

// unparsed hides everything between "://" and the last "@" of the
// authority of a string url.Parse rejected, and drops its query and
// fragment.
func unparsed(raw string) string {
	rest, scheme := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	auth, path := rest, ""
	if i := strings.Index(rest, "/"); i >= 0 {
		auth, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		auth = Marker + auth[i:]
	}
	return scheme + auth + path
}

// Scrub replaces in msg, a message made by a library from raw, every
// credential of raw (see URL), in case the library quoted it; the rest of
// msg is kept.
func Scrub(msg, raw string) string {
	for _, s := range secrets(raw) {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, Marker)
		}
	}
	return msg
}

// secrets returns raw's credentials, in both their raw and decoded forms.
func secrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	add := func(decoded string) {
		out = append(out, decoded)
		if esc := url.QueryEscape(decoded); esc != decoded {
			out = append(out, esc)
		}
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		} else {
			add(u.User.Username())
		}
	}
	for k, vs := range u.Query() {
		if SecretParam(k) {
			for _, v := range vs {
				add(v)
			}
		}
	}
	if u.Fragment != "" {
		add(u.Fragment)
	}
	return out
}
