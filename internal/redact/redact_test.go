package redact_test

import (
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/internal/redact"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
		secrets         bool
	}{
		{"no credential", "https://data.example/sets/a.csv?alt=media", "https://data.example/sets/a.csv?alt=media", false},
		{"object URL params", "s3://bucket/k/a.csv?region=eu-west-3&endpoint=http://127.0.0.1:9000", "s3://bucket/k/a.csv?region=eu-west-3&endpoint=http://127.0.0.1:9000", false},
		{"password", "https://u:PW_SECRET@data.example/a.csv", "https://u:xxxxx@data.example/a.csv", true},
		{"lone user is a token", "https://PW_SECRET@data.example/a.csv", "https://xxxxx@data.example/a.csv", true},
		{"S3 presigned", "https://b.s3.amazonaws.com/a.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261204&X-Amz-Signature=PW_SECRET&X-Amz-Security-Token=PW_SECRET2",
			"https://b.s3.amazonaws.com/a.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=xxxxx&X-Amz-Security-Token=xxxxx&X-Amz-Signature=xxxxx", true},
		{"GCS signed", "https://storage.googleapis.com/b/a.csv?X-Goog-Signature=PW_SECRET&X-Goog-Expires=900", "https://storage.googleapis.com/b/a.csv?X-Goog-Expires=900&X-Goog-Signature=xxxxx", true},
		{"Azure SAS", "https://acct.blob.core.windows.net/c/a.csv?sv=2022-11-02&sp=r&sig=PW%2BSECRET%3D", "https://acct.blob.core.windows.net/c/a.csv?sig=xxxxx&sp=r&sv=2022-11-02", true},
		{"S3 v2 presigned", "https://b.s3.amazonaws.com/a.csv?AWSAccessKeyId=AKIA&Signature=PW_SECRET&Expires=1", "https://b.s3.amazonaws.com/a.csv?AWSAccessKeyId=xxxxx&Expires=1&Signature=xxxxx", true},
		{"access token", "https://api.example/a.jsonl?access_token=PW_SECRET", "https://api.example/a.jsonl?access_token=xxxxx", true},
		{"fragment", "https://api.example/a.jsonl#token=PW_SECRET", "https://api.example/a.jsonl#xxxxx", true},
		{"unparsable", "https://u:PW_SECRET@h:port/a.csv?sig=PW_SECRET2", "https://xxxxx@h:port/a.csv", true},
		{"redis", "redis-sentinel://a:1,b:2/3?master=m&sentinel_password=PW_SECRET", "redis-sentinel://a:1,b:2/3?master=m&sentinel_password=xxxxx", true},
		{"path", "/data/a.csv", "/data/a.csv", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := redact.URL(tc.raw)
			if got != tc.want {
				t.Errorf("URL(%q) = %q, want %q", tc.raw, got, tc.want)
			}
			if strings.Contains(got, "PW") {
				t.Errorf("URL(%q) = %q keeps a secret", tc.raw, got)
			}
			if redact.HasSecrets(tc.raw) != tc.secrets {
				t.Errorf("HasSecrets(%q) = %v, want %v", tc.raw, !tc.secrets, tc.secrets)
			}
			// A redacted URL still says it had secrets (they are now the
			// marker), and redacting it again changes nothing.
			if redact.HasSecrets(got) != tc.secrets {
				t.Errorf("HasSecrets(%q) (redacted) = %v, want %v", got, !tc.secrets, tc.secrets)
			}
			if again := redact.URL(got); again != got {
				t.Errorf("URL(URL(%q)) = %q, want %q", tc.raw, again, got)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	raw := "https://user:PW%2FSECRET@h.example/a.csv?sig=SIG%2BVALUE&sp=r"
	msg := `Get "https://user:PW/SECRET@h.example/a.csv?sig=SIG%2BVALUE&sp=r": sig SIG+VALUE refused; sp=r kept`
	got := redact.Scrub(msg, raw)
	for _, s := range []string{"PW/SECRET", "SIG+VALUE", "SIG%2BVALUE"} {
		if strings.Contains(got, s) {
			t.Errorf("Scrub kept %q: %s", s, got)
		}
	}
	if !strings.Contains(got, "sp=r kept") {
		t.Errorf("Scrub dropped the rest of the message: %s", got)
	}
}
