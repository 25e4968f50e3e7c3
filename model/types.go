package model

// APIVersion is the only model version faultline reads and writes.
const APIVersion = "faultline/v1"

// KindSystem is the kind of a model document.
const KindSystem = "System"

// System is a whole distributed system: its components, how they call each other, where requests
// enter, and what the owners promise (the SLO). It is the one model every faultline tool reads.
type System struct {
	APIVersion  string       `yaml:"apiVersion" json:"apiVersion" jsonschema:"enum=faultline/v1" jsonschema_description:"Model version; always faultline/v1."`
	Kind        string       `yaml:"kind" json:"kind" jsonschema:"enum=System" jsonschema_description:"Always System."`
	Metadata    Metadata     `yaml:"metadata" json:"metadata" jsonschema_description:"Name and description of the system."`
	SLO         *SLO         `yaml:"slo,omitempty" json:"slo,omitempty" jsonschema_description:"What the system promises its users."`
	Services    []Service    `yaml:"services,omitempty" json:"services,omitempty" jsonschema_description:"Processes the team deploys and runs."`
	Datastores  []Datastore  `yaml:"datastores,omitempty" json:"datastores,omitempty" jsonschema_description:"Databases, caches and search indexes."`
	Brokers     []Broker     `yaml:"brokers,omitempty" json:"brokers,omitempty" jsonschema_description:"Message brokers and event streams."`
	Externals   []External   `yaml:"externals,omitempty" json:"externals,omitempty" jsonschema_description:"Systems outside the team's control that it calls (third-party APIs, hosts that match no workload)."`
	Edges       []Edge       `yaml:"edges,omitempty" json:"edges,omitempty" jsonschema_description:"Who calls or messages whom, and how."`
	Entrypoints []Entrypoint `yaml:"entrypoints,omitempty" json:"entrypoints,omitempty" jsonschema_description:"Where user requests enter the system."`

	// Sources lists the files the model was loaded or imported from.
	Sources []string `yaml:"-" json:"-"`
	// Warnings are non-fatal remarks made while importing (a missing variable, an unknown kind).
	Warnings []Problem `yaml:"-" json:"-"`
}

// Metadata names and describes a system.
type Metadata struct {
	Name        string            `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"System name."`
	Description string            `yaml:"description,omitempty" json:"description,omitempty" jsonschema_description:"What the system does, in a sentence."`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty" jsonschema_description:"Free-form labels (team, domain)."`
}

// SLO is a service level objective: availability as a fraction (0.999 is three nines) and a latency
// bound at the 99th percentile.
type SLO struct {
	Availability float64  `yaml:"availability,omitempty" json:"availability,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Target availability as a fraction: 0.999 is three nines."`
	LatencyP99   Duration `yaml:"latencyP99,omitempty" json:"latencyP99,omitempty" jsonschema_description:"Target 99th-percentile latency."`

	Source Source `yaml:"-" json:"-"`
}

// Service is a process the team deploys: a microservice, a gateway, a worker.
type Service struct {
	Name          string         `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Unique name across services, datastores, brokers and externals."`
	Role          string         `yaml:"role,omitempty" json:"role,omitempty" jsonschema:"enum=service,enum=gateway,enum=bff,enum=frontend,enum=worker,enum=sidecar" jsonschema_description:"What the service is for; gateway and bff mark the API entry layer. Default service."`
	Replicas      int            `yaml:"replicas,omitempty" json:"replicas,omitempty" jsonschema:"minimum=1" jsonschema_description:"Running instances. Default 1."`
	Zones         []string       `yaml:"zones,omitempty" json:"zones,omitempty" jsonschema_description:"Availability zones the replicas are spread over."`
	Stateless     *bool          `yaml:"stateless,omitempty" json:"stateless,omitempty" jsonschema_description:"True when any replica can serve any request (no local session or data). Unknown when absent."`
	Partitioned   bool           `yaml:"partitioned,omitempty" json:"partitioned,omitempty" jsonschema_description:"True when a stateful service splits its state by key across replicas (sharding)."`
	Datastores    []string       `yaml:"datastores,omitempty" json:"datastores,omitempty" jsonschema_description:"Names of the datastores this service reads or writes."`
	API           *API           `yaml:"api,omitempty" json:"api,omitempty"`
	Observability *Observability `yaml:"observability,omitempty" json:"observability,omitempty"`
	Probes        *Probes        `yaml:"probes,omitempty" json:"probes,omitempty"`
	Workload      *Workload      `yaml:"workload,omitempty" json:"workload,omitempty" jsonschema_description:"How the service is deployed, as read from compose files or Kubernetes manifests."`
	Secrets       []Secret       `yaml:"secrets,omitempty" json:"secrets,omitempty" jsonschema_description:"Secrets the service receives and how they are supplied."`
	Availability  float64        `yaml:"availability,omitempty" json:"availability,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Availability of one replica; faultline's default is used when absent."`

	Source Source `yaml:"-" json:"-"`
}

// API describes the contract a service exposes.
type API struct {
	OpenAPI  string `yaml:"openapi,omitempty" json:"openapi,omitempty" jsonschema_description:"Path or URL of the OpenAPI document."`
	AsyncAPI string `yaml:"asyncapi,omitempty" json:"asyncapi,omitempty" jsonschema_description:"Path or URL of the AsyncAPI document for the events it publishes."`
	GRPC     string `yaml:"grpc,omitempty" json:"grpc,omitempty" jsonschema_description:"Path of the .proto file."`
	Version  string `yaml:"version,omitempty" json:"version,omitempty" jsonschema_description:"API version clients address, such as v1."`
}

// Observability says what telemetry a service emits.
type Observability struct {
	Logs    string `yaml:"logs,omitempty" json:"logs,omitempty" jsonschema:"enum=structured,enum=unstructured,enum=none" jsonschema_description:"Log format."`
	Metrics string `yaml:"metrics,omitempty" json:"metrics,omitempty" jsonschema_description:"Metrics system such as prometheus or otel; none when absent on purpose."`
	Tracing string `yaml:"tracing,omitempty" json:"tracing,omitempty" jsonschema_description:"Tracing system such as otel, jaeger or zipkin; none when absent on purpose."`
	Alerts  *bool  `yaml:"alerts,omitempty" json:"alerts,omitempty" jsonschema_description:"True when alerts are defined for the service's errors, latency and availability."`
}

// Probes says which health checks the platform runs against a service.
type Probes struct {
	Liveness  bool `yaml:"liveness,omitempty" json:"liveness,omitempty" jsonschema_description:"The platform restarts an instance that stops answering."`
	Readiness bool `yaml:"readiness,omitempty" json:"readiness,omitempty" jsonschema_description:"The platform stops routing to an instance that is not ready."`
	Startup   bool `yaml:"startup,omitempty" json:"startup,omitempty" jsonschema_description:"Slow starts are given time before liveness applies."`
}

// Workload is what the deployment files say about how a service runs.
type Workload struct {
	Platform         string            `yaml:"platform,omitempty" json:"platform,omitempty" jsonschema:"enum=kubernetes,enum=compose,enum=other" jsonschema_description:"Where the service is deployed."`
	Kind             string            `yaml:"kind,omitempty" json:"kind,omitempty" jsonschema_description:"Workload kind: Deployment, StatefulSet, DaemonSet, or compose service."`
	Namespace        string            `yaml:"namespace,omitempty" json:"namespace,omitempty" jsonschema_description:"Kubernetes namespace."`
	Image            string            `yaml:"image,omitempty" json:"image,omitempty" jsonschema_description:"Container image of the main container."`
	Resources        *Resources        `yaml:"resources,omitempty" json:"resources,omitempty" jsonschema_description:"CPU and memory requests and limits of the main container."`
	DisruptionBudget *DisruptionBudget `yaml:"disruptionBudget,omitempty" json:"disruptionBudget,omitempty" jsonschema_description:"The PodDisruptionBudget covering the workload."`
	AntiAffinity     bool              `yaml:"antiAffinity,omitempty" json:"antiAffinity,omitempty" jsonschema_description:"Replicas are kept on different hosts by pod anti-affinity."`
	TopologySpread   bool              `yaml:"topologySpread,omitempty" json:"topologySpread,omitempty" jsonschema_description:"Replicas are spread across hosts or zones by topology spread constraints."`
	Autoscale        *Autoscale        `yaml:"autoscale,omitempty" json:"autoscale,omitempty" jsonschema_description:"The horizontal autoscaler's replica range."`
}

// Resources are CPU and memory requests and limits, as written in the deployment files.
type Resources struct {
	CPURequest    string `yaml:"cpuRequest,omitempty" json:"cpuRequest,omitempty" jsonschema_description:"CPU request as written (250m, 1)."`
	MemoryRequest string `yaml:"memoryRequest,omitempty" json:"memoryRequest,omitempty" jsonschema_description:"Memory request as written (128Mi)."`
	CPULimit      string `yaml:"cpuLimit,omitempty" json:"cpuLimit,omitempty" jsonschema_description:"CPU limit as written."`
	MemoryLimit   string `yaml:"memoryLimit,omitempty" json:"memoryLimit,omitempty" jsonschema_description:"Memory limit as written."`
}

// DisruptionBudget is a PodDisruptionBudget: how many replicas voluntary disruptions must leave.
type DisruptionBudget struct {
	MinAvailable   string `yaml:"minAvailable,omitempty" json:"minAvailable,omitempty" jsonschema_description:"A count or a percentage."`
	MaxUnavailable string `yaml:"maxUnavailable,omitempty" json:"maxUnavailable,omitempty" jsonschema_description:"A count or a percentage."`
	Name           string `yaml:"name,omitempty" json:"name,omitempty" jsonschema_description:"Name of the PodDisruptionBudget object."`
}

// Autoscale is a horizontal autoscaler's range.
type Autoscale struct {
	Min int `yaml:"min,omitempty" json:"min,omitempty" jsonschema:"minimum=0" jsonschema_description:"Fewest replicas."`
	Max int `yaml:"max,omitempty" json:"max,omitempty" jsonschema:"minimum=1" jsonschema_description:"Most replicas."`
}

// Secret is a secret a service receives. From says how: a literal value in the configuration (which
// the security review flags), or a reference to a secret store.
type Secret struct {
	Name string `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Variable or file name."`
	From string `yaml:"from" json:"from" jsonschema:"enum=literal,enum=secretRef,enum=file,enum=vault,enum=env" jsonschema_description:"literal means the value is written in the configuration."`

	Source Source `yaml:"-" json:"-"`
}

// Datastore is a database, cache or index.
type Datastore struct {
	Name            string    `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Unique name across services, datastores, brokers and externals."`
	Kind            string    `yaml:"kind,omitempty" json:"kind,omitempty" jsonschema_description:"Engine: postgres, mysql, mongo, redis, cassandra, elasticsearch..."`
	Replicas        int       `yaml:"replicas,omitempty" json:"replicas,omitempty" jsonschema:"minimum=1" jsonschema_description:"Copies of the data. Default 1."`
	Zones           []string  `yaml:"zones,omitempty" json:"zones,omitempty" jsonschema_description:"Availability zones the copies are spread over."`
	Replication     string    `yaml:"replication,omitempty" json:"replication,omitempty" jsonschema:"enum=none,enum=leader-follower,enum=multi-leader,enum=leaderless,enum=consensus" jsonschema_description:"How copies are kept."`
	Shards          int       `yaml:"shards,omitempty" json:"shards,omitempty" jsonschema:"minimum=1" jsonschema_description:"Partitions the data is split into. Default 1."`
	Managed         bool      `yaml:"managed,omitempty" json:"managed,omitempty" jsonschema_description:"Run by a provider that handles failover (RDS Multi-AZ, Cloud SQL HA...)."`
	EncryptedAtRest *bool     `yaml:"encryptedAtRest,omitempty" json:"encryptedAtRest,omitempty" jsonschema_description:"Data on disk is encrypted. Unknown when absent."`
	Availability    float64   `yaml:"availability,omitempty" json:"availability,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Availability of one copy; faultline's default is used when absent."`
	Workload        *Workload `yaml:"workload,omitempty" json:"workload,omitempty" jsonschema_description:"How the datastore is deployed, when it runs in the system's own cluster or compose project."`
	Secrets         []Secret  `yaml:"secrets,omitempty" json:"secrets,omitempty" jsonschema_description:"Secrets the datastore's deployment receives (such as its root password) and how they are supplied."`

	Source Source `yaml:"-" json:"-"`
}

// Broker is a message broker or event log.
type Broker struct {
	Name         string    `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Unique name across services, datastores, brokers and externals."`
	Kind         string    `yaml:"kind,omitempty" json:"kind,omitempty" jsonschema_description:"Engine: kafka, rabbitmq, nats, pulsar, sqs..."`
	Replicas     int       `yaml:"replicas,omitempty" json:"replicas,omitempty" jsonschema:"minimum=1" jsonschema_description:"Broker nodes. Default 1."`
	Zones        []string  `yaml:"zones,omitempty" json:"zones,omitempty" jsonschema_description:"Availability zones the broker nodes are spread over."`
	Durable      *bool     `yaml:"durable,omitempty" json:"durable,omitempty" jsonschema_description:"Messages survive a broker restart."`
	Availability float64   `yaml:"availability,omitempty" json:"availability,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Availability of one broker node; faultline's default is used when absent."`
	Workload     *Workload `yaml:"workload,omitempty" json:"workload,omitempty" jsonschema_description:"How the broker is deployed, when it runs in the system's own cluster or compose project."`
	Secrets      []Secret  `yaml:"secrets,omitempty" json:"secrets,omitempty" jsonschema_description:"Secrets the broker's deployment receives and how they are supplied."`

	Source Source `yaml:"-" json:"-"`
}

// External is a system outside the model's control: a third-party API, or a host named in
// configuration that matches no workload.
type External struct {
	Name         string  `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Unique name across services, datastores, brokers and externals."`
	Host         string  `yaml:"host,omitempty" json:"host,omitempty" jsonschema_description:"Host name or address as written in configuration."`
	Availability float64 `yaml:"availability,omitempty" json:"availability,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Availability the provider promises; faultline's default is used when absent."`

	Source Source `yaml:"-" json:"-"`
}

// Edge is one interaction: From calls To (sync) or sends it messages (async).
type Edge struct {
	From            string   `yaml:"from" json:"from" jsonschema:"minLength=1" jsonschema_description:"Caller or publisher."`
	To              string   `yaml:"to" json:"to" jsonschema:"minLength=1" jsonschema_description:"Callee, datastore, broker or external."`
	Protocol        string   `yaml:"protocol,omitempty" json:"protocol,omitempty" jsonschema:"enum=http,enum=grpc,enum=nats,enum=kafka,enum=amqp,enum=sql,enum=redis,enum=tcp,enum=mqtt,enum=graphql,enum=websocket" jsonschema_description:"Wire protocol."`
	Mode            string   `yaml:"mode,omitempty" json:"mode,omitempty" jsonschema:"enum=sync,enum=async" jsonschema_description:"sync waits for the answer; async does not. Default from the protocol: brokers async, the rest sync."`
	CallsPerRequest float64  `yaml:"callsPerRequest,omitempty" json:"callsPerRequest,omitempty" jsonschema:"minimum=0" jsonschema_description:"Calls made per request the caller serves. Default 1."`
	TLS             *bool    `yaml:"tls,omitempty" json:"tls,omitempty" jsonschema_description:"Traffic is encrypted in transit (TLS or mTLS)."`
	Auth            string   `yaml:"auth,omitempty" json:"auth,omitempty" jsonschema_description:"How the caller authenticates: none, mtls, jwt, apikey, oauth2, basic..."`
	Policy          *Policy  `yaml:"policy,omitempty" json:"policy,omitempty" jsonschema_description:"Resilience policy the caller applies to this call."`
	Critical        *bool    `yaml:"critical,omitempty" json:"critical,omitempty" jsonschema_description:"False when the caller still succeeds without this dependency. Default true."`
	Operation       string   `yaml:"operation,omitempty" json:"operation,omitempty" jsonschema_description:"What is called: an HTTP route, gRPC method or SQL purpose."`
	Topics          []string `yaml:"topics,omitempty" json:"topics,omitempty" jsonschema_description:"Topics, subjects or queues used on an async edge."`
	Outbox          bool     `yaml:"outbox,omitempty" json:"outbox,omitempty" jsonschema_description:"Messages are published through a transactional outbox (or the broker is written in the same transaction)."`
	Transaction     string   `yaml:"transaction,omitempty" json:"transaction,omitempty" jsonschema:"enum=none,enum=2pc,enum=xa,enum=saga,enum=tcc" jsonschema_description:"Distributed transaction protocol the call takes part in."`
	Address         string   `yaml:"address,omitempty" json:"address,omitempty" jsonschema_description:"The configuration value that names the target (URL, host:port, DSN), kept as evidence."`

	Source Source `yaml:"-" json:"-"`
}

// Policy is the resilience policy a caller applies to an edge.
type Policy struct {
	Timeout        Duration        `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema_description:"Deadline for the whole call, retries included."`
	Retry          *Retry          `yaml:"retry,omitempty" json:"retry,omitempty"`
	CircuitBreaker *CircuitBreaker `yaml:"circuitBreaker,omitempty" json:"circuitBreaker,omitempty"`
	Bulkhead       *Bulkhead       `yaml:"bulkhead,omitempty" json:"bulkhead,omitempty"`
	RateLimit      *RateLimit      `yaml:"rateLimit,omitempty" json:"rateLimit,omitempty"`
	Hedge          *Hedge          `yaml:"hedge,omitempty" json:"hedge,omitempty"`
	Fallback       string          `yaml:"fallback,omitempty" json:"fallback,omitempty" jsonschema_description:"What the caller does when the call fails: cached, default, degrade, queue..."`
}

// Retry says how a failed call is tried again.
type Retry struct {
	Attempts      int      `yaml:"attempts,omitempty" json:"attempts,omitempty" jsonschema:"minimum=1" jsonschema_description:"Total attempts including the first."`
	Backoff       string   `yaml:"backoff,omitempty" json:"backoff,omitempty" jsonschema:"enum=none,enum=constant,enum=linear,enum=exponential" jsonschema_description:"How the wait between attempts grows."`
	BaseDelay     Duration `yaml:"baseDelay,omitempty" json:"baseDelay,omitempty" jsonschema_description:"Wait before the first retry."`
	MaxDelay      Duration `yaml:"maxDelay,omitempty" json:"maxDelay,omitempty" jsonschema_description:"Longest wait between attempts."`
	Jitter        string   `yaml:"jitter,omitempty" json:"jitter,omitempty" jsonschema:"enum=none,enum=full,enum=equal,enum=decorrelated" jsonschema_description:"How the wait is randomized so clients do not retry in step."`
	PerTryTimeout Duration `yaml:"perTryTimeout,omitempty" json:"perTryTimeout,omitempty" jsonschema_description:"Deadline of each attempt."`
	Budget        float64  `yaml:"budget,omitempty" json:"budget,omitempty" jsonschema:"minimum=0,maximum=1" jsonschema_description:"Retries allowed as a fraction of recent calls (a retry budget)."`
	RetryOn       []string `yaml:"retryOn,omitempty" json:"retryOn,omitempty" jsonschema_description:"Conditions retried, such as 5xx, reset, unavailable."`
}

// CircuitBreaker stops calls to a failing dependency for a while.
type CircuitBreaker struct {
	FailureRate         float64  `yaml:"failureRate,omitempty" json:"failureRate,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Failure fraction that opens the breaker."`
	ConsecutiveFailures int      `yaml:"consecutiveFailures,omitempty" json:"consecutiveFailures,omitempty" jsonschema:"minimum=1" jsonschema_description:"Consecutive failures that open the breaker (instead of a rate)."`
	MinCalls            int      `yaml:"minCalls,omitempty" json:"minCalls,omitempty" jsonschema:"minimum=1" jsonschema_description:"Calls in the window before the failure rate counts."`
	Window              Duration `yaml:"window,omitempty" json:"window,omitempty" jsonschema_description:"Sliding window the failure rate is measured over."`
	OpenDuration        Duration `yaml:"openDuration,omitempty" json:"openDuration,omitempty" jsonschema_description:"How long the breaker stays open before probing."`
	HalfOpenProbes      int      `yaml:"halfOpenProbes,omitempty" json:"halfOpenProbes,omitempty" jsonschema:"minimum=1" jsonschema_description:"Trial calls let through when the breaker half-opens."`
	SlowCallDuration    Duration `yaml:"slowCallDuration,omitempty" json:"slowCallDuration,omitempty" jsonschema_description:"Calls slower than this count as slow."`
	SlowCallRate        float64  `yaml:"slowCallRate,omitempty" json:"slowCallRate,omitempty" jsonschema:"exclusiveMinimum=0,maximum=1" jsonschema_description:"Slow-call fraction that opens the breaker."`
}

// Bulkhead caps the concurrent calls a caller makes to one dependency.
type Bulkhead struct {
	MaxConcurrent int      `yaml:"maxConcurrent,omitempty" json:"maxConcurrent,omitempty" jsonschema:"minimum=1" jsonschema_description:"Calls in flight at once."`
	MaxQueue      int      `yaml:"maxQueue,omitempty" json:"maxQueue,omitempty" jsonschema:"minimum=0" jsonschema_description:"Calls allowed to wait for a slot."`
	MaxWait       Duration `yaml:"maxWait,omitempty" json:"maxWait,omitempty" jsonschema_description:"Longest wait for a slot."`
}

// RateLimit caps the rate of calls.
type RateLimit struct {
	RPS   float64 `yaml:"rps,omitempty" json:"rps,omitempty" jsonschema:"exclusiveMinimum=0" jsonschema_description:"Calls per second allowed."`
	Burst int     `yaml:"burst,omitempty" json:"burst,omitempty" jsonschema:"minimum=0" jsonschema_description:"Calls allowed at once above the rate."`
}

// Hedge sends a second copy of a slow call.
type Hedge struct {
	Delay     Duration `yaml:"delay,omitempty" json:"delay,omitempty" jsonschema_description:"Wait before sending the hedged copy."`
	MaxHedges int      `yaml:"maxHedges,omitempty" json:"maxHedges,omitempty" jsonschema:"minimum=1" jsonschema_description:"Extra copies at most."`
}

// Entrypoint is where user traffic enters: an endpoint of a service, with its request rate.
type Entrypoint struct {
	Name    string  `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Unique entrypoint name, such as checkout."`
	Service string  `yaml:"service" json:"service" jsonschema:"minLength=1" jsonschema_description:"Service that receives the requests."`
	RPS     float64 `yaml:"rps,omitempty" json:"rps,omitempty" jsonschema:"minimum=0" jsonschema_description:"Requests per second at peak."`
	Path    string  `yaml:"path,omitempty" json:"path,omitempty" jsonschema_description:"Route or operation, such as POST /checkout."`
	SLO     *SLO    `yaml:"slo,omitempty" json:"slo,omitempty" jsonschema_description:"Overrides the system SLO for this entrypoint."`

	Source Source `yaml:"-" json:"-"`
}
