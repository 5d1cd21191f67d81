/// Every configuration key each service reads: the one list that the services, the
/// `docs/configuration.md` reference and the `docker_compose/` check agree on.
public enum ServiceConfigurationKeys {
  /// Keys every gRPC service (command, query, dispatcher) reads.
  public static func server(defaultPort: Int) -> [ConfigurationKey] {
    [
      ConfigurationKey("host", .string, default: "0.0.0.0", "Address to listen on."),
      ConfigurationKey(
        "port", .integer, default: String(defaultPort),
        "gRPC port (0 picks a free port; the bound port is printed)."),
      ConfigurationKey(
        "admin.port", .integer,
        "Port of the admin HTTP endpoint with `/metrics` (Prometheus text format); none when unset."),
      ConfigurationKey(
        "database.url", .string, flag: "database-url", secret: true,
        "PostgreSQL connection string (URL or key=value); may hold the password, so prefer the environment or the file to the flag. Required."
      ),
      ConfigurationKey("kafka.brokers", .list, "Kafka bootstrap servers (comma-separated). Required."),
      ConfigurationKey(
        "tls.certificate", .string,
        "PEM certificate chain for TLS (with `tls.key`); plaintext h2c without it."),
      ConfigurationKey("tls.key", .string, "PEM private key file for TLS."),
      ConfigurationKey(
        "tls.client-ca", .string,
        "PEM certificate authorities: with TLS, require client certificates they issued (mutual TLS)."),
      ConfigurationKey(
        "log.level", .string, default: "info",
        "Log level: trace, debug, info, notice, warning, error or critical."),
      ConfigurationKey(
        "log.format", .string, default: "text",
        "Log format: text (one readable line per record) or json (one JSON object per line)."),
      ConfigurationKey(
        "maximum-connections", .integer, default: "1000",
        "Client connections open at once; one beyond it is closed at once."),
      ConfigurationKey(
        "maximum-connections-per-address", .integer, default: "100",
        "Client connections open at once from one IP address (0: no limit); raise it behind a proxy or NAT."
      ),
      ConfigurationKey(
        "shutdown.grace", .number, default: "20",
        "Seconds a graceful shutdown (SIGTERM) gives running calls and payments in hand to finish."),
    ]
  }

  /// Keys of the services that authenticate API keys (command and query).
  static let authentication: [ConfigurationKey] = [
    ConfigurationKey(
      "auth.failure-burst", .integer, default: "20", flag: "auth-failure-burst",
      "Failed authentications one client IP address may have in a burst before lookups stop (0: no limit)."),
    ConfigurationKey(
      "auth.failure-refill", .number, default: "3", flag: "auth-failure-refill",
      "Seconds until an address may fail once more after its burst is spent."),
  ]

  public static let command: [ConfigurationKey] =
    server(defaultPort: 50051) + authentication + [
      ConfigurationKey(
        "database.connections", .integer, default: "16", "PostgreSQL connections of this instance."),
      ConfigurationKey(
        "maximum-amount-minor", .integer, default: "1000000000000", "The largest accepted amount_minor."),
      ConfigurationKey(
        "providers", .list, default: "sandbox", flag: "provider",
        "Provider names requests may route to (the flag is repeatable)."),
      ConfigurationKey(
        "batch-writers", .integer, default: "2",
        "Batches of payment orders written at the same time (group commit)."),
      ConfigurationKey(
        "maximum-batch-size", .integer, default: "128", "The most payment orders in one batch."),
      ConfigurationKey(
        "relay", .boolean, default: "true", flag: "relay",
        "Whether this instance runs an outbox relay to Kafka (any number may)."),
      ConfigurationKey(
        "retention.outbox-days", .number, default: "7", flag: "outbox-retention-days",
        "Days published outbox rows are kept."),
      ConfigurationKey(
        "retention.idempotency-days", .number, default: "30", flag: "idempotency-retention-days",
        "Days idempotency records are kept (at least 30); after that a key may be reused for a new payment."),
      ConfigurationKey(
        "dispatcher.address", .string, default: "127.0.0.1:50053", flag: "dispatcher-address",
        "HOST:PORT of a dispatcher: its PaymentDispatcherService decides CancelPayment."),
      ConfigurationKey(
        "dispatcher.tls-ca", .string, flag: "dispatcher-tls-ca",
        "PEM file of the CA to trust when calling the dispatcher over TLS (plaintext h2c without it)."),
    ]

  public static let query: [ConfigurationKey] =
    server(defaultPort: 50052) + authentication + [
      ConfigurationKey(
        "database.connections", .integer, default: "16", "PostgreSQL connections of this instance."),
      ConfigurationKey(
        "consumer-group", .string, default: "payments-query", "The projection's Kafka consumer group."),
      ConfigurationKey(
        "maximum-watches-per-client", .integer, default: "100",
        "WatchPayment and WatchEvents streams one client may have open at once on this instance."),
      ConfigurationKey(
        "retention.events-days", .number, default: "30", flag: "event-retention-days",
        "Days the event feed keeps an event (at least 1)."),
    ]

  public static let dispatcher: [ConfigurationKey] =
    server(defaultPort: 50053) + [
      ConfigurationKey(
        "database.connections", .integer, default: "12", "PostgreSQL connections of this instance."),
      ConfigurationKey("workers", .integer, default: "4", "Concurrent payments in this instance."),
      ConfigurationKey(
        "providers", .list, default: "sandbox=http://127.0.0.1:8090", flag: "provider",
        "Providers with the sandbox API, as NAME=BASE_URL (the flag is repeatable)."),
      ConfigurationKey(
        "hmac-providers", .list, flag: "hmac-provider",
        "Providers with the hmacpay API, as NAME=BASE_URL (the flag is repeatable); they sign with `hmac.secret`."
      ),
      ConfigurationKey("hmac.secret", .string, secret: true, "The signing secret of the hmacpay providers."),
      ConfigurationKey(
        "provider-settings", .list, flag: "provider-setting",
        "Per-provider settings, as NAME:KEY=VALUE; KEY is rate-limit, timeout (seconds), max-attempts, retry-base (seconds), retry-factor or retry-cap (seconds)."
      ),
      ConfigurationKey(
        "default-provider", .string, default: "sandbox",
        "The provider for payments that name none and whose currency has no route."),
      ConfigurationKey(
        "routes", .list, flag: "route",
        "Currency routing, as CURRENCY=PROVIDER (the flag is repeatable): payments in that currency that name no provider go there."
      ),
      ConfigurationKey(
        "rate-limit", .integer, default: "2",
        "Provider calls per second, shared by all instances (per provider)."),
      ConfigurationKey(
        "rate-limit-groups", .list, flag: "rate-limit-group",
        "Providers that share one limit (one upstream account), as PROVIDER=GROUP (the flag is repeatable); the group's limit is `rate-limit` or GROUP:rate-limit in `provider-settings`."
      ),
      ConfigurationKey(
        "lease", .number, default: "60",
        "Seconds a claimed payment stays with an instance, from the claim and from each call's start; at least every provider's timeout plus 1 s."
      ),
      ConfigurationKey(
        "provider-timeout", .number, default: "5", "Timeout of one provider call, in seconds."),
      ConfigurationKey(
        "maximum-attempts", .integer, default: "8", "Attempts before a transiently failing payment fails."),
      ConfigurationKey(
        "retry.base", .number, default: "0.5",
        "Backoff: the longest wait after the first failed attempt, in seconds."),
      ConfigurationKey(
        "retry.factor", .number, default: "2",
        "Backoff: how much the longest wait grows with each further attempt."),
      ConfigurationKey(
        "retry.cap", .number, default: "60", "Backoff: the longest wait there can be, in seconds."),
      ConfigurationKey(
        "payment-expiry", .number,
        "Seconds after acceptance when an uncharged payment fails as expired (unset: never)."),
      ConfigurationKey(
        "consumer-group", .string, default: "payments-dispatcher", "The intake's Kafka consumer group."),
      ConfigurationKey(
        "retention.outbox-days", .number, default: "7", flag: "outbox-retention-days",
        "Days published outbox rows are kept."),
    ]

  public static let providerSandbox: [ConfigurationKey] = [
    ConfigurationKey("host", .string, default: "127.0.0.1", "Address to listen on."),
    ConfigurationKey(
      "port", .integer, default: "8090", "Port (0 picks a free port; the bound port is printed)."),
    ConfigurationKey(
      "rate-limit", .integer, default: "2",
      "Calls per second it accepts (charges, refunds, lookups); more get 429 and count as violations."),
    ConfigurationKey(
      "internal-error-rate", .number, default: "0", "Share of charge requests that fail with 500 (0...1)."),
    ConfigurationKey(
      "unavailable-rate", .number, default: "0", "Share of charge requests that fail with 503 (0...1)."),
    ConfigurationKey(
      "error-after-charge-rate", .number, default: "0",
      "Share of charges that are made and then answered with 500 or 502 (0...1)."),
    ConfigurationKey(
      "non-idempotent", .boolean, default: "false",
      "A repeated Idempotency-Key charges again (as some real providers do)."),
    ConfigurationKey(
      "lost-response-rate", .number, default: "0",
      "Share of charges whose reply is held back past any client timeout (0...1)."),
    ConfigurationKey(
      "lost-response-seconds", .number, default: "30", "How long a lost reply is held, in seconds."),
    ConfigurationKey("slow-rate", .number, default: "0", "Share of charges answered slowly (0...1)."),
    ConfigurationKey("slow-seconds", .number, default: "3", "How long a slow reply takes, in seconds."),
    ConfigurationKey(
      "decline-amounts", .list, default: "402,40402", flag: "decline-amount",
      "Amounts (minor units) that are always declined (the flag is repeatable)."),
    ConfigurationKey("seed", .integer, default: "1", "Seed of the failure injection."),
  ]

  /// The keys of each `payments` subcommand that reads configuration, by subcommand name.
  public static let all: [(command: String, keys: [ConfigurationKey])] = [
    ("command", command), ("query", query), ("dispatcher", dispatcher), ("provider-sandbox", providerSandbox),
  ]
}
