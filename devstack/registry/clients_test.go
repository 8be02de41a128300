package registry_test

import (
	"context"
	"net/http"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/sr"
)

// client is what the shared cases need from a registry client. Each client
// library gets an adapter, and the same suite runs against both.
type client interface {
	Register(ctx context.Context, subject, schema string) (id int, err error)
	Lookup(ctx context.Context, subject, schema string) (id, version int, err error)
	SchemaByID(ctx context.Context, id int) (string, error)
	Versions(ctx context.Context, subject string) ([]int, error)
	Latest(ctx context.Context, subject string) (version, id int, schema string, err error)
	CompatibleWithLatest(ctx context.Context, subject, schema string) (bool, error)
	SetLevel(ctx context.Context, subject, level string) error
	Level(ctx context.Context, subject string, defaultToGlobal bool) (string, error)
	DeleteSubject(ctx context.Context, subject string, permanent bool) error
}

type srclientAdapter struct {
	c *srclient.SchemaRegistryClient
}

func newSRClient(url string, httpClient *http.Client) client {
	c := srclient.CreateSchemaRegistryClientWithOptions(url, httpClient, 16)
	c.CachingEnabled(false) // the suite must see every answer of the registry
	c.CodecCreationEnabled(false)
	return srclientAdapter{c}
}

func (a srclientAdapter) Register(_ context.Context, subject, schema string) (int, error) {
	s, err := a.c.CreateSchema(subject, schema, srclient.Avro)
	if err != nil {
		return 0, err
	}
	return s.ID(), nil
}

func (a srclientAdapter) Lookup(_ context.Context, subject, schema string) (int, int, error) {
	s, err := a.c.LookupSchema(subject, schema, srclient.Avro)
	if err != nil {
		return 0, 0, err
	}
	return s.ID(), s.Version(), nil
}

func (a srclientAdapter) SchemaByID(_ context.Context, id int) (string, error) {
	s, err := a.c.GetSchema(id)
	if err != nil {
		return "", err
	}
	return s.Schema(), nil
}

func (a srclientAdapter) Versions(_ context.Context, subject string) ([]int, error) {
	return a.c.GetSchemaVersions(subject)
}

func (a srclientAdapter) Latest(_ context.Context, subject string) (int, int, string, error) {
	s, err := a.c.GetLatestSchema(subject)
	if err != nil {
		return 0, 0, "", err
	}
	return s.Version(), s.ID(), s.Schema(), nil
}

func (a srclientAdapter) CompatibleWithLatest(_ context.Context, subject, schema string) (bool, error) {
	return a.c.IsSchemaCompatible(subject, schema, "latest", srclient.Avro)
}

// SetLevel sets a subject's level; srclient cannot set the global one.
func (a srclientAdapter) SetLevel(_ context.Context, subject, level string) error {
	_, err := a.c.ChangeSubjectCompatibilityLevel(subject, srclient.CompatibilityLevel(level))
	return err
}

func (a srclientAdapter) Level(_ context.Context, subject string, defaultToGlobal bool) (string, error) {
	var level *srclient.CompatibilityLevel
	var err error
	if subject == "" {
		level, err = a.c.GetGlobalCompatibilityLevel()
	} else {
		level, err = a.c.GetCompatibilityLevel(subject, defaultToGlobal)
	}
	if err != nil {
		return "", err
	}
	return level.String(), nil
}

func (a srclientAdapter) DeleteSubject(_ context.Context, subject string, permanent bool) error {
	return a.c.DeleteSubject(subject, permanent) // soft, then hard if permanent
}

type franzAdapter struct{ c *sr.Client }

func newFranzClient(url string, httpClient *http.Client) (client, error) {
	c, err := sr.NewClient(sr.URLs(url), sr.HTTPClient(httpClient))
	return franzAdapter{c}, err
}

func (a franzAdapter) Register(ctx context.Context, subject, schema string) (int, error) {
	// CreateSchema also looks the schema up by id: /schemas/ids/{id}/versions.
	ss, err := a.c.CreateSchema(ctx, subject, sr.Schema{Schema: schema})
	return ss.ID, err
}

func (a franzAdapter) Lookup(ctx context.Context, subject, schema string) (int, int, error) {
	ss, err := a.c.LookupSchema(ctx, subject, sr.Schema{Schema: schema})
	return ss.ID, ss.Version, err
}

func (a franzAdapter) SchemaByID(ctx context.Context, id int) (string, error) {
	s, err := a.c.SchemaByID(ctx, id)
	return s.Schema, err
}

func (a franzAdapter) Versions(ctx context.Context, subject string) ([]int, error) {
	return a.c.SubjectVersions(ctx, subject)
}

func (a franzAdapter) Latest(ctx context.Context, subject string) (int, int, string, error) {
	ss, err := a.c.SchemaByVersion(ctx, subject, -1)
	return ss.Version, ss.ID, ss.Schema.Schema, err
}

func (a franzAdapter) CompatibleWithLatest(ctx context.Context, subject, schema string) (bool, error) {
	res, err := a.c.CheckCompatibility(ctx, subject, -1, sr.Schema{Schema: schema})
	return res.Is, err
}

func (a franzAdapter) SetLevel(ctx context.Context, subject, level string) error {
	var l sr.CompatibilityLevel
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return err
	}
	return a.c.SetCompatibility(ctx, sr.SetCompatibility{Level: l}, subject)[0].Err
}

func (a franzAdapter) Level(ctx context.Context, subject string, defaultToGlobal bool) (string, error) {
	if defaultToGlobal {
		ctx = sr.WithParams(ctx, sr.DefaultToGlobal)
	}
	res := a.c.Compatibility(ctx, subject)[0]
	return res.Level.String(), res.Err
}

func (a franzAdapter) DeleteSubject(ctx context.Context, subject string, permanent bool) error {
	if _, err := a.c.DeleteSubject(ctx, subject, sr.SoftDelete); err != nil || !permanent {
		return err
	}
	_, err := a.c.DeleteSubject(ctx, subject, sr.HardDelete)
	return err
}
