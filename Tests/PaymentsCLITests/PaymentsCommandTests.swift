import DevStack
import Foundation
import Glibc
import Kafka
import PaymentsSchema
import PaymentsTestSupport
import Postgres
import Testing

@Suite("payments command line")
struct PaymentsCommandTests {
  @Test("`payments broker` prints its bootstrap address, serves Kafka clients and exits 0 on SIGTERM")
  func brokerSubprocess() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "broker-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let bootstrapFile = directory.appendingPathComponent("bootstrap").path
    let outputFile = directory.appendingPathComponent("output").path
    let output = open(outputFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let pid = try ChildProcess.spawn(
      try Executables.path("payments"),
      ["broker", "--brokers", "2", "--topic", "cli.test:3", "--bootstrap-file", bootstrapFile], output: output
    )
    close(output)
    var killed = false
    defer { if !killed { kill(pid, SIGKILL); _ = try? ChildProcess.wait(pid) } }

    let deadline = ContinuousClock.now + .seconds(30)
    while !FileManager.default.fileExists(atPath: bootstrapFile), ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(50))
    }
    let bootstrap = try String(contentsOfFile: bootstrapFile, encoding: .utf8)
      .trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(bootstrap.split(separator: ",").count == 2, "one address per broker: \(bootstrap)")
    let printed = try String(contentsOfFile: outputFile, encoding: .utf8)
    #expect(printed.contains("bootstrap=\(bootstrap)"))

    // A real client round trip through the subprocess' brokers.
    let client = KafkaClientConfiguration(bootstrapServers: [bootstrap], clientID: "cli-test")
    let producer = try KafkaProducer(configuration: .init(client: client), logger: quietLogger("p"))
    let report = try await producer.send(
      KafkaProducerRecord(topic: "cli.test", key: "k", value: Array("hello".utf8)))
    #expect((0..<3).contains(report.partition))
    await producer.close()
    let consumer = try KafkaConsumer(
      configuration: KafkaConsumerConfiguration(client: client, groupID: "cli", sessionTimeout: .seconds(6)),
      topics: ["cli.test"], logger: quietLogger("c"))
    var iterator = consumer.records.makeAsyncIterator()
    let record = try #require(try await iterator.next())
    #expect(record.value == Array("hello".utf8))
    await consumer.close()

    kill(pid, SIGTERM)
    let status = try await ChildProcess.wait(pid)
    killed = true
    #expect(status == 0)
  }

  @Test("`payments broker` rejects a malformed --topic with a message that names it")
  func brokerBadTopic() throws {
    let result = try ChildProcess.run(try Executables.path("payments"), ["broker", "--topic", "orders"])
    #expect(result.status != 0)
    #expect(result.output.contains("--topic 'orders'"))
  }

  @Test(
    "`payments dispatcher --route`: a malformed route, or one to a provider it does not know, stops start-up naming it"
  )
  func badRoutes() throws {
    let payments = try Executables.path("payments")
    let common = [
      "dispatcher", "--database-url", "postgres://127.0.0.1:1/x", "--kafka-brokers", "127.0.0.1:1",
    ]
    for (route, message) in [
      ("euro=sandbox", "has 'euro=sandbox'; expected CURRENCY=PROVIDER"),
      ("JYP=sandbox", "has 'JYP=sandbox'; expected CURRENCY=PROVIDER with a known ISO 4217 code"),
      ("JPY=nowhere", "routes JPY to 'nowhere', which is not among the configured providers"),
    ] {
      let result = try ChildProcess.run(payments, common + ["--route", route])
      #expect(result.status != 0)
      #expect(
        result.output.contains("'routes' (from flag --route)") && result.output.contains(message),
        "\(result.output)")
    }
  }

  @Test("`payments migrate` applies every schema once; running it again applies nothing")
  func migrate() async throws {
    let url = try await TestPostgres.shared.makeDatabase()
    let payments = try Executables.path("payments")
    let first = try await ChildProcess.run(payments, ["migrate", "--database-url", url])
    #expect(first.status == 0, "\(first.output)")
    let total = PaymentsMigrations.all.count
    #expect(first.output.contains("\(total) applied, 0 already present"))
    let second = try await ChildProcess.run(payments, ["migrate", "--database-url", url])
    #expect(second.status == 0, "\(second.output)")
    #expect(second.output.contains("0 applied, \(total) already present"))

    let bad = try await ChildProcess.run(
      payments, ["migrate", "--database-url", "host=127.0.0.1 port=1 dbname=x connect_timeout=2"])
    #expect(bad.status != 0)
    #expect(bad.output.contains("connection failed") || bad.output.contains("Connection refused"))
  }

  @Test("`payments migrate --wait` keeps trying until PostgreSQL accepts connections, then migrates")
  func migrateWaits() async throws {
    let payments = try Executables.path("payments")
    // Nothing listens: it gives up after the wait, saying so.
    let started = ContinuousClock.now
    let nobody = try await ChildProcess.run(
      payments, ["migrate", "--wait", "2", "--database-url", "host=127.0.0.1 port=1 dbname=x"])
    #expect(nobody.status != 0)
    #expect(nobody.output.contains("did not accept a connection within 2.0 s"), "\(nobody.output)")
    #expect(ContinuousClock.now - started >= .seconds(1))
    // A server that comes up 3 s after migrate started.
    let cluster = try LocalPostgresCluster.create(prefix: "migrate-wait")
    defer {
      try? cluster.stop()
      try? FileManager.default.removeItem(atPath: cluster.directory)
    }
    async let migrated = ChildProcess.run(
      payments, ["migrate", "--wait", "60", "--database-url", cluster.connectionString])
    try await Task.sleep(for: .seconds(3))
    try cluster.start()
    let result = try await migrated
    #expect(result.status == 0, "\(result.output)")
    #expect(result.output.contains("waiting for PostgreSQL"), "\(result.output)")
    #expect(result.output.contains("\(PaymentsMigrations.all.count) applied"), "\(result.output)")
  }
}
