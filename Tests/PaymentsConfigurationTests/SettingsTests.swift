import CommandService
import DispatcherService
import Foundation
import PaymentsConfiguration
import PaymentsCore
import ProviderSandbox
import QueryService
import Testing

@Suite("Configuration layers")
struct SettingsTests {
  let keys = ServiceConfigurationKeys.dispatcher

  func file(_ name: String, _ text: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID())-\(name)")
      .path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test("a flag beats the environment, which beats the file, which beats the default")
  func precedence() throws {
    let path = try file("c.yaml", "workers: 7\nrate-limit: 3\nconsumer-group: from-file\n")
    let settings = try Settings(
      keys: keys, file: path,
      environment: ["PAYMENTS_WORKERS": "9", "PAYMENTS_RATE_LIMIT": "5", "HOME": "/x"])
    #expect(try settings.integer("workers", flag: 11) == 11)
    #expect(settings.raw("workers", flag: ["11"])?.source == .flag("--workers"))
    #expect(try settings.integer("workers") == 9)
    #expect(settings.raw("workers")?.source == .environment("PAYMENTS_WORKERS"))
    #expect(settings.string("consumer-group") == "from-file")
    #expect(settings.raw("consumer-group")?.source == .file(path))
    #expect(try settings.number("retry.cap") == 60)
    #expect(settings.raw("retry.cap")?.source == .defaultValue)
    #expect(try settings.number("payment-expiry") == nil, "no default, nothing set")
  }

  @Test("YAML: nested sections and dotted names are the same key; sequences are lists")
  func yaml() throws {
    let path = try file(
      "c.yml",
      """
      database:
        url: postgres://db/payments
      retry:
        cap: 40
      retry.factor: 3
      providers:
        - a=http://a:1
        - b=http://b:2
      retry.base: 0.25
      """)
    let settings = try Settings(keys: keys, file: path, environment: [:])
    #expect(try settings.required("database.url") == "postgres://db/payments")
    #expect(try settings.number("retry.cap") == 40)
    #expect(try settings.number("retry.factor") == 3)
    #expect(settings.list("providers") == ["a=http://a:1", "b=http://b:2"])
    #expect(try settings.number("retry.base") == 0.25)
  }

  @Test("JSON: numbers stay numbers and booleans booleans (Foundation gives both as NSNumber)")
  func json() throws {
    let path = try file(
      "c.json",
      #"{"workers": 1, "relay": false, "retry": {"factor": 1.5}, "kafka": {"brokers": ["k1:9092", "k2:9092"]}}"#
    )
    let dispatcher = try Settings(
      keys: keys.filter { $0.name != "relay" } + [ConfigurationKey("relay", .boolean, "test")], file: path,
      environment: [:])
    #expect(try dispatcher.integer("workers") == 1)
    #expect(try dispatcher.boolean("relay") == false)
    #expect(try dispatcher.number("retry.factor") == 1.5)
    #expect(dispatcher.list("kafka.brokers") == ["k1:9092", "k2:9092"])
  }

  @Test("lists: comma-separated in the environment, repeated flags")
  func lists() throws {
    let settings = try Settings(
      keys: keys, file: nil, environment: ["PAYMENTS_PROVIDERS": "a=http://a:1, b=http://b:2,"])
    #expect(settings.list("providers") == ["a=http://a:1", "b=http://b:2"])
    #expect(settings.list("providers", flag: ["c=http://c:3"]) == ["c=http://c:3"])
    #expect(settings.list("hmac-providers").isEmpty)
  }

  @Test("a bad value names the key and where it came from")
  func badValues() throws {
    let settings = try Settings(
      keys: keys, file: nil,
      environment: ["PAYMENTS_WORKERS": "four", "PAYMENTS_RATE_LIMIT": "0", "PAYMENTS_RETRY_FACTOR": "nan"])
    #expect(throws: ConfigurationError.self) { try settings.integer("workers") }
    do {
      _ = try settings.integer("workers")
    } catch {
      #expect(
        "\(error)"
          == "configuration key 'workers' (from environment PAYMENTS_WORKERS): 'four' is not an integer")
    }
    do {
      _ = try settings.integer("rate-limit", in: 1...100_000)
      Issue.record("0 was accepted as a rate limit")
    } catch {
      #expect(
        "\(error)".contains("configuration key 'rate-limit'") && "\(error)".contains("between 1 and 100000"))
    }
    #expect(throws: ConfigurationError.self) { try settings.number("retry.factor") }
    #expect(throws: ConfigurationError.self) { try settings.required("database.url") }
  }

  @Test("an unknown key in the file stops start-up and names it")
  func unknownKey() throws {
    let path = try file("c.yaml", "workerz: 3\n")
    do {
      _ = try Settings(keys: keys, file: path, environment: [:])
      Issue.record("a misspelt key was accepted")
    } catch {
      #expect("\(error)".contains("unknown configuration key 'workerz'"))
    }
    #expect(throws: ConfigurationError.self) {
      try Settings(keys: keys, file: path + ".missing", environment: [:])
    }
    let toml = try file("c.toml", "workers = 3\n")
    #expect(throws: ConfigurationError.self) { try Settings(keys: keys, file: toml, environment: [:]) }
    let broken = try file("c.json", "{\"workers\": ")
    #expect(throws: ConfigurationError.self) { try Settings(keys: keys, file: broken, environment: [:]) }
  }

  @Test("YAML that Yams' own constructor trapped on, or that would expand without bound, is an error")
  func hostileYAML() throws {
    let cases: [(String, String)] = [
      // A key that is a mapping (found by ConfigurationFuzzer: Yams force-unwrapped it).
      ("database:\n ? url: postgres://x\nworkers: 4\n", "not a plain name"),
      ("? [a, b]\n: 1\n", "not a plain name"),
      // Nine levels of ten aliases each: a billion values from a few hundred bytes.
      (
        "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
          + (1...8).map {
            "l\($0): &l\($0) ["
              + Array(repeating: $0 == 1 ? "*a" : "*l\($0 - 1)", count: 10).joined(separator: ",") + "]"
          }
          .joined(separator: "\n") + "\n",
        "alias"
      ),
      ("workers: ~\n", "must be a string, number or boolean"),
      ("workers: 2001-12-14\n", "is not an integer"),
      // A YAML 1.1 sexagesimal integer too large for Int (found by ConfigurationFuzzer: Yams'
      // own conversion multiplied and trapped on the overflow).
      ("workers: 44:4:4:4:4:44:4:4:4:44:44:4:4:4:4:4\n", "is not an integer"),
      ("workers: 1:20\n", "is not an integer"),
    ]
    for (text, expected) in cases {
      let path = try file("c.yaml", text)
      do {
        let settings = try Settings(keys: keys, file: path, environment: [:])
        _ = try settings.integer("workers")
        Issue.record("accepted: \(text.prefix(60))")
      } catch {
        #expect("\(error)".contains(expected), "\(text.prefix(60)): \(error)")
      }
    }
    let huge = try file("c.yaml", "workers: 4\n# " + String(repeating: "x", count: 1 << 20) + "\n")
    #expect(throws: ConfigurationError.self) { try Settings(keys: keys, file: huge, environment: [:]) }
  }

  @Test("secrets never appear: not in the summary, not in errors, and they have no flag unless declared")
  func secrets() throws {
    let password = "hunter2-\(UUID())"
    let settings = try Settings(
      keys: keys + [ConfigurationKey("test.token", .integer, secret: true, "test")], file: nil,
      environment: [
        "PAYMENTS_DATABASE_URL": "postgres://payments:\(password)@db/payments",
        "PAYMENTS_HMAC_SECRET": password, "PAYMENTS_TEST_TOKEN": password,
      ])
    let summary = settings.summary.map { "\($0.key)=\($0.value) (\($0.source))" }.joined(separator: "\n")
    #expect(!summary.contains(password))
    #expect(summary.contains("database.url=<secret>"))
    #expect(summary.contains("hmac.secret=<secret>"))
    do {
      _ = try settings.integer("test.token")
      Issue.record("a non-integer was accepted")
    } catch {
      #expect(!"\(error)".contains(password), "\(error)")
      #expect("\(error)".contains("test.token"))
    }
    #expect(!"\(settings.invalid("database.url", reason: "is bad"))".contains(password))
    #expect(keys.first { $0.name == "hmac.secret" }?.flag == nil)
    #expect(keys.first { $0.name == "database.url" }?.flag == "--database-url")
  }

  @Test("names: environment variables and flags follow from the key")
  func names() {
    let connections = keys.first { $0.name == "database.connections" }!
    #expect(connections.environmentVariable == "PAYMENTS_DATABASE_CONNECTIONS")
    #expect(connections.flag == "--database-connections")
    let cap = keys.first { $0.name == "retry.cap" }!
    #expect(cap.environmentVariable == "PAYMENTS_RETRY_CAP")
    #expect(cap.flag == "--retry-cap")
    let providers = keys.first { $0.name == "providers" }!
    #expect(providers.environmentVariable == "PAYMENTS_PROVIDERS")
    #expect(providers.flag == "--provider")
    for (command, keys) in ServiceConfigurationKeys.all {
      #expect(Set(keys.map(\.name)).count == keys.count, "\(command) declares a key twice")
    }
  }

  /// The documented defaults are the ones the libraries use when nothing is configured.
  @Test("the keys' defaults are the libraries' defaults")
  func defaults() throws {
    func value(_ keys: [ConfigurationKey], _ name: String) -> String? {
      keys.first { $0.name == name }?.defaultValue
    }
    let command = ServiceConfigurationKeys.command
    #expect(value(command, "maximum-amount-minor") == String(PaymentOrderRules().maximumAmountMinor))
    #expect(value(command, "batch-writers") == String(PaymentOrderStore.Configuration().concurrentBatches))
    #expect(
      value(command, "maximum-batch-size") == String(PaymentOrderStore.Configuration().maximumBatchSize))
    let dispatcher = ServiceConfigurationKeys.dispatcher
    let retry = RetryPolicy()
    func seconds(_ duration: Duration) -> Double {
      Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
    #expect(Double(value(dispatcher, "retry.base")!) == seconds(retry.base))
    #expect(Double(value(dispatcher, "retry.factor")!) == retry.factor)
    #expect(Double(value(dispatcher, "retry.cap")!) == seconds(retry.cap))
    #expect(Int(value(dispatcher, "maximum-attempts")!) == retry.maximumAttempts)
    let limiter = PostgresRateLimiter.Configuration()
    #expect(Int(value(dispatcher, "rate-limit")!) == limiter.defaultLimit)
    let sandbox = ProviderSandbox.Configuration()
    let sandboxKeys = ServiceConfigurationKeys.providerSandbox
    #expect(Int(value(sandboxKeys, "port")!) == sandbox.port)
    #expect(Int(value(sandboxKeys, "rate-limit")!) == sandbox.rateLimit)
    #expect(
      Set(value(sandboxKeys, "decline-amounts")!.split(separator: ",").map { Int64($0)! })
        == sandbox.declinedAmounts)
  }
}
