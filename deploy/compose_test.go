package deploy

import (
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/system"
)

// services is every process of docker-compose.yml and what it must be:
// others' images and provision, then every process of system.Processes.
var services = append([]service{
	{name: "kafka", ports: []string{"9092"}},
	{name: "schema-registry", ports: []string{"8081"}},
	{name: "kafka-ui", ports: []string{"8090"}},
	{name: "jaeger", ports: []string{"16686"}, more: []string{"4317", "4318"}},
	{name: "provision", ports: []string{""}, config: reflect.TypeFor[config.Kafka](), oneShot: true},
}, ours()...)

type service struct {
	name string
	// ports has one entry per instance: the host port it publishes, "" for
	// none. The first is the port of `make run`, where our process listens
	// in every instance. One instance is the compose service name; several
	// are name-1, name-2 and so on.
	ports []string
	// more are further host ports of a one-instance service.
	more   []string
	config reflect.Type // what our process reads from the environment; nil for others' images
	// oneShot runs to completion: others wait for its success, not its health.
	oneShot bool
}

// ours returns the long-running processes of system.Processes: replicas
// instances each, the first on its port, each next 10000 higher.
func ours() []service {
	var all []service
	for _, p := range system.Processes {
		s := service{name: p.Name, config: reflect.TypeOf(p.Config(&system.Config{})).Elem()}
		for i := range replicas {
			s.ports = append(s.ports, strconv.Itoa(p.Port+10000*i))
		}
		all = append(all, s)
	}
	return all
}

// replicas is how many instances docker-compose.yml runs of every
// long-running process of ours, which share its work by Kafka partition.
const replicas = 2

// instance is one compose service running a process of the table.
type instance struct {
	name string // the compose service, also its host name in the network
	port string // the host port it publishes; "" for none
}

// instances returns the compose services that run the process named name.
func instances(name string, ports []string) []instance {
	if len(ports) == 1 {
		return []instance{{name: name, port: ports[0]}}
	}
	var all []instance
	for i, port := range ports {
		all = append(all, instance{name: name + "-" + strconv.Itoa(i+1), port: port})
	}
	return all
}

// connectionVars point into the compose network, or name the process in
// its traces, so they differ from the defaults (127.0.0.1, none and the
// like) on purpose; every other variable keeps its default.
var connectionVars = []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "ADVERTISED_HTTP_ADDR",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"}

// loadCompose loads docker-compose.yml as `docker compose` does, validating
// it against the compose schema, with an empty environment so that every
// ${VAR:-default} takes its default.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"}, cli.WithWorkingDirectory(".."))
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return project
}

func TestComposeListsEveryService(t *testing.T) {
	project := loadCompose(t)
	var want []string
	for _, s := range services {
		for _, in := range instances(s.name, s.ports) {
			want = append(want, in.name)
		}
	}
	got := project.ServiceNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("services: got %v, want %v (a process of system.Processes runs as name-1 and name-2; others are in this test's table)", got, want)
	}
}

// TestComposeRunsReplicas: every long-running process of ours runs as
// several instances, so that compose exercises what one alone would not.
func TestComposeRunsReplicas(t *testing.T) {
	for _, s := range services {
		if s.config != nil && !s.oneShot && len(s.ports) != replicas {
			t.Errorf("%s: got %d instances, want %d", s.name, len(s.ports), replicas)
		}
	}
}

func TestComposeService(t *testing.T) {
	project := loadCompose(t)
	oneShot := map[string]bool{}
	for _, s := range services {
		for _, in := range instances(s.name, s.ports) {
			oneShot[in.name] = s.oneShot
		}
	}
	for _, s := range services {
		for _, in := range instances(s.name, s.ports) {
			t.Run(in.name, func(t *testing.T) {
				svc, err := project.GetService(in.name)
				if err != nil {
					t.Fatal(err)
				}
				checkImage(t, svc, s.name)

				if s.oneShot {
					if svc.HealthCheck != nil && !svc.HealthCheck.Disable {
						t.Errorf("healthcheck: got %v, want none on a one-shot", svc.HealthCheck.Test)
					}
				} else if svc.HealthCheck == nil || svc.HealthCheck.Disable || len(svc.HealthCheck.Test) == 0 {
					t.Error("healthcheck: got none, want one")
				}

				for dep, d := range svc.DependsOn {
					want := types.ServiceConditionHealthy
					if oneShot[dep] {
						want = types.ServiceConditionCompletedSuccessfully
					}
					if d.Condition != want {
						t.Errorf("depends_on %s: got condition %q, want %q", dep, d.Condition, want)
					}
				}

				var published, want []string
				for _, p := range svc.Ports {
					published = append(published, p.Published)
				}
				if in.port != "" {
					want = append([]string{in.port}, s.more...)
				}
				if !slices.Equal(published, want) {
					t.Errorf("published ports: got %v, want %v", published, want)
				}

				if s.config != nil {
					checkOurProcess(t, project, svc, s.ports[0], s.config)
				}
				// A process that cannot restore its state at start exits,
				// for its supervisor to start it again (docs/guarantees.md).
				if s.config != nil && !s.oneShot && svc.Restart != types.RestartPolicyUnlessStopped {
					t.Errorf("restart: got %q, want %q", svc.Restart, types.RestartPolicyUnlessStopped)
				}
			})
		}
	}
}

// TestComposeInstancesAdvertiseThemselves: an instance forwards a request
// for a key it does not own to the owner, at the owner's
// ADVERTISED_HTTP_ADDR, so each instance advertises its own: its compose
// service (its host name in the network) and the port it listens on.
func TestComposeInstancesAdvertiseThemselves(t *testing.T) {
	project := loadCompose(t)
	for _, s := range services {
		if s.config == nil || s.oneShot {
			continue
		}
		owner := map[string]string{} // advertised address -> instance
		for _, in := range instances(s.name, s.ports) {
			svc, err := project.GetService(in.name)
			if err != nil {
				t.Error(err)
				continue
			}
			advertised := env(svc, "ADVERTISED_HTTP_ADDR")
			host, port, err := net.SplitHostPort(advertised)
			if err != nil {
				t.Errorf("%s: ADVERTISED_HTTP_ADDR %q: got %v, want host:port", in.name, advertised, err)
				continue
			}
			if host != in.name {
				t.Errorf("%s: ADVERTISED_HTTP_ADDR %q: got host %q, want its own service, %q", in.name, advertised, host, in.name)
			}
			listen := httpAddr(svc, envDefaults(s.config))
			if _, want, err := net.SplitHostPort(listen); err != nil || port != want {
				t.Errorf("%s: ADVERTISED_HTTP_ADDR %q: got port %q, want that of HTTP_ADDR %q", in.name, advertised, port, listen)
			}
			if other, ok := owner[advertised]; ok {
				t.Errorf("%s: ADVERTISED_HTTP_ADDR %q: got that of %s too, want its own", in.name, advertised, other)
			}
			owner[advertised] = in.name
		}
	}
}

// TestComposeProcessesSendTracesToJaeger: every instance of a long-running
// process of ours sends its traces to the jaeger service, on the port
// where it takes OTLP over HTTP, under its process's name.
func TestComposeProcessesSendTracesToJaeger(t *testing.T) {
	project := loadCompose(t)
	jaeger, err := project.GetService("jaeger")
	if err != nil {
		t.Fatal(err)
	}
	const otlpHTTP = 4318
	if !slices.ContainsFunc(jaeger.Ports, func(p types.ServicePortConfig) bool { return p.Target == otlpHTTP }) {
		t.Errorf("jaeger: got ports %v, want %d, OTLP over HTTP", jaeger.Ports, otlpHTTP)
	}
	for _, s := range services {
		if s.config == nil || s.oneShot {
			continue
		}
		for _, in := range instances(s.name, s.ports) {
			svc, err := project.GetService(in.name)
			if err != nil {
				t.Error(err)
				continue
			}
			if got, want := env(svc, "OTEL_EXPORTER_OTLP_ENDPOINT"), "http://jaeger:"+strconv.Itoa(otlpHTTP); got != want {
				t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT: got %q, want %q", in.name, got, want)
			}
			if got := env(svc, "OTEL_SERVICE_NAME"); got != s.name {
				t.Errorf("%s: OTEL_SERVICE_NAME: got %q, want its process's name, %q", in.name, got, s.name)
			}
		}
	}
}

// TestComposeKafkaCreatesNoTopics: with auto-creation on, a process that
// starts before provision (or a typo) gets a one-partition topic that
// deletes old records, and a state topic must be compacted.
func TestComposeKafkaCreatesNoTopics(t *testing.T) {
	kafka, err := loadCompose(t).GetService("kafka")
	if err != nil {
		t.Fatal(err)
	}
	if got := env(kafka, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"); got != "false" {
		t.Errorf("KAFKA_AUTO_CREATE_TOPICS_ENABLE: got %q, want \"false\"", got)
	}
}

// checkImage: an image is pinned to a tag other than latest (or a digest),
// or built from a Dockerfile of ours that declares every build arg it gets
// and builds the binary of process.
func checkImage(t *testing.T, svc types.ServiceConfig, process string) {
	t.Helper()
	if svc.Build == nil {
		if tag := imageTag(svc.Image); tag == "" || tag == "latest" {
			t.Errorf("image %q: got tag %q, want a pinned version", svc.Image, tag)
		}
		return
	}
	dockerfile := svc.Build.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(svc.Build.Context, dockerfile)
	}
	text, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	declared := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(string(text), -1) {
		declared[m[1]] = true
	}
	for arg := range svc.Build.Args {
		if !declared[arg] {
			t.Errorf("build arg %s: got no `ARG %s` in %s, want one", arg, arg, dockerfile)
		}
	}
	// Each service builds its own binary, not a copy-pasted neighbour's.
	if got := svc.Build.Args["SERVICE"]; got == nil || *got != process {
		t.Errorf("build arg SERVICE: got %v, want %q", deref(got), process)
	}
}

// checkOurProcess holds a service of ours to the Config it reads: only
// variables it knows, its defaults, its port (where it listens; "" for
// none), and addresses in the network.
func checkOurProcess(t *testing.T, project *types.Project, svc types.ServiceConfig, port string, cfg reflect.Type) {
	t.Helper()
	defaults := envDefaults(cfg)
	reader := strings.TrimPrefix(cfg.PkgPath(), "github.com/kafkasaga/kafkasaga/") + "." + cfg.Name()
	for name, value := range svc.Environment {
		def, known := defaults[name]
		switch {
		case !known:
			t.Errorf("environment %s: got a variable %s does not read, want only its own", name, reader)
		case !slices.Contains(connectionVars, name) && deref(value) != def:
			t.Errorf("environment %s: got %q, want the default of %s, %q", name, deref(value), reader, def)
		}
	}

	// With AUTO_REGISTER_SCHEMAS=false a service only looks schemas up.
	if got, want := svc.DependsOn["provision"].Condition, types.ServiceConditionCompletedSuccessfully; svc.Name != "provision" && got != want {
		t.Errorf("depends_on provision: got condition %q, want %q", got, want)
	}

	if port != "" {
		addr := httpAddr(svc, defaults)
		if _, got, err := net.SplitHostPort(addr); err != nil || got != port {
			t.Errorf("HTTP_ADDR %q: got port %q, want %s", addr, got, port)
		}
		for _, p := range svc.Ports {
			if got := strconv.FormatUint(uint64(p.Target), 10); got != port {
				t.Errorf("port %s: got container port %s, want %s, where HTTP_ADDR listens", p.Published, got, port)
			}
		}
		var test []string
		if svc.HealthCheck != nil {
			test = svc.HealthCheck.Test
		}
		if !strings.Contains(strings.Join(test, " "), ":"+port+"/readyz") {
			t.Errorf("healthcheck: got %q, want a GET of :%s/readyz", test, port)
		}
	}

	kafka, err := project.GetService("kafka")
	if err != nil {
		t.Fatal(err)
	}
	advertised := env(kafka, "KAFKA_ADVERTISED_LISTENERS")
	for _, broker := range strings.Split(env(svc, "KAFKA_BROKERS"), ",") {
		if host, _, _ := net.SplitHostPort(broker); host != kafka.Name || !strings.Contains(advertised, "//"+broker) {
			t.Errorf("KAFKA_BROKERS %q: got an address the kafka service does not advertise (%s), want one that it does", broker, advertised)
		}
	}
	if got, want := env(svc, "SCHEMA_REGISTRY_URL"), "http://schema-registry:8081"; got != want {
		t.Errorf("SCHEMA_REGISTRY_URL: got %q, want %q", got, want)
	}
}

// httpAddr returns where a service of ours listens: its HTTP_ADDR, else the
// default of its Config (from envDefaults).
func httpAddr(svc types.ServiceConfig, defaults map[string]string) string {
	if v, ok := svc.Environment["HTTP_ADDR"]; ok {
		return deref(v)
	}
	return defaults["HTTP_ADDR"]
}

// envDefaults returns every variable a config struct reads, by its `env`
// tag, with its `envDefault`, descending into untagged nested structs as
// the env library does.
func envDefaults(t reflect.Type) map[string]string {
	vars := map[string]string{}
	for f := range t.Fields() {
		name, ok := f.Tag.Lookup("env")
		switch {
		case ok:
			vars[name] = f.Tag.Get("envDefault")
		case f.Type.Kind() == reflect.Struct:
			maps.Copy(vars, envDefaults(f.Type))
		}
	}
	return vars
}

// imageTag returns the tag (or digest) of an image reference, "" if none.
func imageTag(ref string) string {
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		return digest
	}
	_, tag, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	return tag
}

func env(svc types.ServiceConfig, name string) string { return deref(svc.Environment[name]) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestEveryProcessIsBuilt: the Dockerfile (by compose's build arg SERVICE)
// and `make build` build every process of system.Processes, one of
// services/ by the rule for all of them, any other by a rule of its own.
func TestEveryProcessIsBuilt(t *testing.T) {
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	build := recipe(string(makefile), "build")
	if build == "" {
		t.Fatal("Makefile: got no build target, want one")
	}
	for _, p := range system.Processes {
		service := path.Dir(p.Main) == "services"
		if own := p.Name + `) pkg="./` + p.Main + `"`; !(service && strings.Contains(string(dockerfile), `pkg="./services/${SERVICE}"`)) && !strings.Contains(string(dockerfile), own) {
			t.Errorf("Dockerfile: got no rule that builds %s (SERVICE=%s), want its case, %s", p.Main, p.Name, own)
		}
		if !(service && strings.Contains(build, "$(wildcard services/*/main.go)")) && !slices.Contains(strings.Fields(build), "./"+p.Main) {
			t.Errorf("Makefile: build: got no ./%s, want it built", p.Main)
		}
	}
}

// TestMakeTestRunsOnTheEmbeddedStack: the tests run the system on any
// Kafka and registry KAFKA_BROKERS and SCHEMA_REGISTRY_URL name (as
// test-kafka does, one package at a time), so `make test`, `make test-ui`
// and `make bench`'s Go benchmarks must not take them from a shell that
// exports them for `make run` or compose: the tests of several packages at
// once would write to that system's topics, join its groups and write its
// registry, and test-ui would skip what needs the embedded broker.
func TestMakeTestRunsOnTheEmbeddedStack(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	ui, err := os.ReadFile("../scripts/test-ui.sh")
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{
		"Makefile: test":     recipe(string(makefile), "test"),
		"Makefile: bench":    recipe(string(makefile), "bench"),
		"scripts/test-ui.sh": string(ui),
	} {
		found := false
		for line := range strings.SplitSeq(text, "\n") {
			if !strings.Contains(line, "go test") && !strings.Contains(line, "$(GO) test") || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			found = true
			for _, v := range []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL"} {
				if !strings.Contains(line, "-u "+v+" ") {
					t.Errorf("%s: %q runs with the shell's %s, want it unset (env -u %s)", where, strings.TrimSpace(line), v, v)
				}
			}
		}
		if !found {
			t.Errorf("%s: got no go test line", where)
		}
	}
}

// recipe returns the lines of a Makefile's target's recipe, "" if none.
func recipe(makefile, target string) string {
	var lines []string
	in := false
	for line := range strings.SplitSeq(makefile, "\n") {
		switch {
		case strings.HasPrefix(line, target+":"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			lines = append(lines, line)
		case in:
			return strings.Join(lines, "\n")
		}
	}
	return strings.Join(lines, "\n")
}

// Every long-running service comes back with the Docker daemon or after a
// crash, the infrastructure too: instances that come back without Kafka
// and the registry would only fail their starts until someone ran
// `docker compose up` again.
func TestComposeEveryServiceRestarts(t *testing.T) {
	for _, svc := range loadCompose(t).Services {
		if svc.Name == "provision" { // runs once and exits
			continue
		}
		if svc.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("%s: restart %q, want %q", svc.Name, svc.Restart, types.RestartPolicyUnlessStopped)
		}
	}
}

// Kafka is healthy once the listener the other services use answers, not
// only the one published to the host.
func TestComposeKafkaIsHealthyOnTheListenerTheServicesUse(t *testing.T) {
	project := loadCompose(t)
	kafka, err := project.GetService("kafka")
	if err != nil {
		t.Fatal(err)
	}
	order, err := project.GetService("order-1")
	if err != nil {
		t.Fatal(err)
	}
	brokers := env(order, "KAFKA_BROKERS")
	if kafka.HealthCheck == nil || !slices.Contains(kafka.HealthCheck.Test, brokers) {
		t.Errorf("kafka's healthcheck %v does not probe %s, the services' KAFKA_BROKERS", kafka.HealthCheck, brokers)
	}
}
