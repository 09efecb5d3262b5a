// Package cloud opens dataset objects in S3 (s3://), Google Cloud Storage
// (gs://) and Azure Blob Storage (azblob://) with gocloud.dev/blob: Open is
// a datasrc.ObjectOpener. It is its own package because the three SDKs
// weigh about 60 MB of binary: only cmd/enqueue (and tests) import it.
//
// Credentials come from the environment, as each cloud's SDK reads them:
//
//   - s3://BUCKET/KEY: the AWS SDK's chain: AWS_ACCESS_KEY_ID and
//     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE with
//     ~/.aws/credentials, web identity (EKS IRSA: AWS_ROLE_ARN and
//     AWS_WEB_IDENTITY_TOKEN_FILE), the container or instance role; region
//     from AWS_REGION or ?region=; another endpoint (MinIO…) from
//     AWS_ENDPOINT_URL or ?endpoint=…&use_path_style=true.
//   - gs://BUCKET/KEY: Application Default Credentials:
//     GOOGLE_APPLICATION_CREDENTIALS (a key file), gcloud auth
//     application-default login, or the GCE/GKE metadata server (workload
//     identity); STORAGE_EMULATOR_HOST for an emulator.
//   - azblob://CONTAINER/KEY: AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY,
//     or AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_CONNECTION_STRING, else
//     Azure's default credential (AZURE_CLIENT_ID, AZURE_TENANT_ID,
//     AZURE_CLIENT_SECRET or workload identity, managed identity, az login).
//
// The query of a dataset URL goes to gocloud's bucket opener (s3: region,
// endpoint, use_path_style, profile…; azblob: domain, protocol,
// storage_account…; see gocloud.dev/concepts/urls).
package cloud

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"
	"gocloud.dev/gcp"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
)

// Open opens the object key of the bucket bucketURL (s3://BUCKET?params,
// gs://BUCKET, azblob://CONTAINER?params) for streaming and returns its
// size. A missing bucket or object matches datasrc.ErrNotFound; the
// store's unavailability or throttling matches datasrc.ErrTransient.
func Open(ctx context.Context, bucketURL *url.URL, key string) (io.ReadCloser, int64, error) {
	b, err := openBucket(ctx, bucketURL)
	if err != nil {
		return nil, -1, err
	}
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		b.Close()
		switch gcerrors.Code(err) {
		case gcerrors.NotFound:
			return nil, -1, fmt.Errorf("%w: %w", datasrc.ErrNotFound, err)
		case gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded, gcerrors.Internal:
			return nil, -1, fmt.Errorf("%w: %w", datasrc.ErrTransient, err)
		}
		return nil, -1, err
	}
	return &object{Reader: r, bucket: b}, r.Size(), nil
}

// openBucket opens the bucket with the driver of its scheme.
func openBucket(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	switch u.Scheme {
	case s3blob.Scheme:
		return openS3(ctx, u)
	case azureblob.Scheme:
		// The driver's default opener reads the environment.
		return blob.DefaultURLMux().OpenBucketURL(ctx, u)
	case gcsblob.Scheme:
		return openGCS(ctx, u)
	}
	return nil, fmt.Errorf("%w: scheme %q", datasrc.ErrUnsupported, u.Scheme)
}

// openS3 opens an S3 bucket as s3blob's default opener does (the query's
// parameters go to gocloud's AWS config: region, endpoint, profile…), with
// path-style addressing on request, and without the SDK's line on stderr
// for each object stored without a checksum (enqueue's stderr carries its
// structured logs). The write-only parameters (ssetype, kmskeyid) are
// ignored: a dataset is only read.
func openS3(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	var opts []func(*s3.Options)
	for _, k := range []string{"use_path_style", "s3ForcePathStyle", "disable_https", "accelerate"} {
		v := q.Get(k)
		q.Del(k)
		if v == "" {
			continue
		}
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("invalid value for %q: %w", k, err)
		}
		switch k {
		case "disable_https":
			opts = append(opts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = on })
		case "accelerate":
			opts = append(opts, func(o *s3.Options) { o.UseAccelerate = on })
		default:
			opts = append(opts, func(o *s3.Options) { o.UsePathStyle = on })
		}
	}
	q.Del("ssetype")
	q.Del("kmskeyid")
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	opts = append(opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, opts...), u.Host, nil)
}

// openGCS opens a GCS bucket with Application Default Credentials. Unlike
// gcsblob's default opener, missing credentials are an error here (that
// opener prints a warning on stdout, where enqueue writes its summary, and
// goes on without credentials).
func openGCS(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	if os.Getenv("STORAGE_EMULATOR_HOST") != "" || u.Query().Get("anonymous") == "true" {
		return blob.DefaultURLMux().OpenBucketURL(ctx, u)
	}
	creds, err := gcp.DefaultCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("no Google Cloud credentials (set GOOGLE_APPLICATION_CREDENTIALS to a key file, run "+
			"gcloud auth application-default login, or run with a workload identity): %w", err)
	}
	client, err := gcp.NewHTTPClient(gcp.DefaultTransport(), creds.TokenSource)
	if err != nil {
		return nil, err
	}
	o := &gcsblob.URLOpener{Client: client, TokenSource: gcp.CredentialsTokenSource(creds)}
	return o.OpenBucketURL(ctx, u)
}

// object is an open object; Close closes its bucket too.
type object struct {
	*blob.Reader
	bucket *blob.Bucket
}

// Close closes the reader and the bucket.
func (o *object) Close() error {
	err := o.Reader.Close()
	if cerr := o.bucket.Close(); err == nil {
		err = cerr
	}
	return err
}
