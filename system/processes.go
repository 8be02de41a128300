package system

import (
	"fmt"
	"log/slog"
	"reflect"

	orchestrator "github.com/kafkasaga/kafkasaga/orchestrator/service"
	"github.com/kafkasaga/kafkasaga/platform/config"
	"github.com/kafkasaga/kafkasaga/platform/process"
	"github.com/kafkasaga/kafkasaga/platform/telemetry"
	customer "github.com/kafkasaga/kafkasaga/services/customer/service"
	order "github.com/kafkasaga/kafkasaga/services/order/service"
	payment "github.com/kafkasaga/kafkasaga/services/payment/service"
)

// Processes is the one table of the system's processes. Everything that
// starts, tests, builds or deploys them reads it: Run (and so `make run`),
// cmd/bench, cmd/takeover, the system tests, and deploy's checks of
// docker-compose.yml, the Dockerfile and the Makefile. A new process is a
// row here and a field of Config: `make participant` writes both.
var Processes = []Process{
	define("order", "services/order", 8080, func(c *Config) *order.Config { return &c.Order }, order.New),
	define("customer", "services/customer", 8082, func(c *Config) *customer.Config { return &c.Customer }, customer.New),
	define("payment", "services/payment", 8083, func(c *Config) *payment.Config { return &c.Payment }, payment.New),
	// make participant adds rows above
	define("orchestrator", "orchestrator", 8084, func(c *Config) *orchestrator.Config { return &c.Orchestrator }, orchestrator.New),
}

// Process is one row of Processes.
type Process struct {
	// Name is the process's name: its consumer group, the service of its
	// logs, its binary, the Dockerfile's SERVICE and docker-compose.yml's
	// Name-1 and Name-2.
	Name string
	// Main is the directory of its main package, from the repository root.
	Main string
	// Port is its default HTTP port, the default of its Config's HTTP_ADDR
	// and the host port of its first instance in docker-compose.yml (the
	// second's is 10000 higher).
	Port int
	// Config returns the process's part of cfg, a pointer to its service's
	// Config; HTTPAddr, Kafka and Telemetry return that part's fields of
	// those names.
	Config    func(cfg *Config) any
	HTTPAddr  func(cfg *Config) *string
	Kafka     func(cfg *Config) *config.Kafka
	Telemetry func(cfg *Config) *telemetry.Config
	// New builds the process from its part of cfg, as its own main does.
	New func(cfg *Config, logger *slog.Logger) (*process.Process, error)
}

// Names returns the name of every process, in the order of Processes.
func Names() []string {
	names := make([]string, len(Processes))
	for i, p := range Processes {
		names[i] = p.Name
	}
	return names
}

// define makes a row of Processes from the process's part of Config, a
// service Config C with the fields HTTPAddr (a string), Kafka and
// Telemetry, and its service's New.
func define[C any](name, main string, port int, part func(*Config) *C, build func(C, *slog.Logger) (*process.Process, error)) Process {
	t := reflect.TypeFor[C]()
	for field, want := range map[string]reflect.Type{"HTTPAddr": reflect.TypeFor[string](), "Kafka": reflect.TypeFor[config.Kafka](),
		"Telemetry": reflect.TypeFor[telemetry.Config]()} {
		if f, ok := t.FieldByName(field); !ok || f.Type != want {
			panic(fmt.Sprintf("system: process %s: %s has no field %s %s", name, t, field, want))
		}
	}
	field := func(c *Config, name string) any {
		return reflect.ValueOf(part(c)).Elem().FieldByName(name).Addr().Interface()
	}
	return Process{
		Name:      name,
		Main:      main,
		Port:      port,
		Config:    func(c *Config) any { return part(c) },
		HTTPAddr:  func(c *Config) *string { return field(c, "HTTPAddr").(*string) },
		Kafka:     func(c *Config) *config.Kafka { return field(c, "Kafka").(*config.Kafka) },
		Telemetry: func(c *Config) *telemetry.Config { return field(c, "Telemetry").(*telemetry.Config) },
		New:       func(c *Config, l *slog.Logger) (*process.Process, error) { return build(*part(c), l) },
	}
}
