import CLibPQ
import Glibc
import Logging
import Synchronization

// The functions in this file run on a connection's own thread (see ConnectionThread) and are the
// only place where the connection's `PGconn *` is used.
extension PostgresConnection {
  static func open(
    _ handle: ConnectionHandle, configuration: PostgresConnectionConfiguration, shared: SharedState,
    logger: Logger
  ) throws {
    let timeoutSeconds = max(2, Int(configuration.connectTimeout.components.seconds))
    var keywords = ["dbname", "application_name", "connect_timeout", "client_encoding"]
    var values = [
      configuration.connectionString, configuration.applicationName, String(timeoutSeconds), "UTF8",
    ]
    var sessionSettings = ""
    if let limits = configuration.limits {
      let tcpSeconds = max(1, Int(limits.tcpTimeout.components.seconds))
      keywords += [
        "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
      ]
      values += ["1", String(max(1, tcpSeconds - 3)), "1", "3", String(tcpSeconds * 1000)]
      sessionSettings =
        "; SET statement_timeout = \(limits.statementTimeout.milliseconds)"
        + "; SET idle_in_transaction_session_timeout = \(limits.idleInTransactionTimeout.milliseconds)"
        + "; SET tcp_keepalives_idle = \(max(1, tcpSeconds - 3)); SET tcp_keepalives_interval = 1"
        + "; SET tcp_keepalives_count = 3; SET tcp_user_timeout = \(tcpSeconds * 1000)"
    }
    let connection = withCStringArray(keywords) { keywordPointers in
      withCStringArray(values) { valuePointers in
        PQconnectdbParams(keywordPointers, valuePointers, 1)
      }
    }
    guard let connection else {
      throw PostgresError(code: .connectionFailed, message: "out of memory while connecting")
    }
    guard PQstatus(connection) == CONNECTION_OK else {
      let message = errorMessage(connection)
      PQfinish(connection)
      throw PostgresError(code: .connectionFailed, message: message)
    }
    handle.connection = connection
    let sink = NoticeSink(logger: logger)
    handle.noticeSink = sink
    PQsetNoticeReceiver(connection, postgresNoticeReceiver, Unmanaged.passUnretained(sink).toOpaque())
    // Fixed session settings that the value decoders rely on.
    let setup = PQexec(
      connection,
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET bytea_output = 'hex'; SET IntervalStyle = 'iso_8601'"
        + sessionSettings
    )
    defer { PQclear(setup) }
    guard let setup, PQresultStatus(setup) == PGRES_COMMAND_OK else {
      let message = errorMessage(connection)
      handle.finish()
      throw PostgresError(code: .connectionFailed, message: "session setup failed: \(message)")
    }
    let cancelHandle = PQgetCancel(connection).map(CancelHandle.init(pointer:))
    shared.values.withLock { $0.cancelHandle = cancelHandle }
    handle.watchSocket = true
  }

  static func teardown(_ handle: ConnectionHandle, shared: SharedState) {
    let subscribers = shared.values.withLock { values in
      values.closed = true
      if let cancelHandle = values.cancelHandle {
        PQfreeCancel(cancelHandle.pointer)
        values.cancelHandle = nil
      }
      var all: [AsyncThrowingStream<PostgresNotification, any Error>.Continuation] = []
      for channel in values.subscribers.values { all.append(contentsOf: channel.values) }
      values.subscribers = [:]
      return all
    }
    for subscriber in subscribers { subscriber.finish() }
    handle.finish()
  }

  static func markBroken(_ handle: ConnectionHandle, shared: SharedState, message: String) {
    handle.watchSocket = false
    let subscribers = shared.values.withLock { values in
      values.broken = true
      var all: [AsyncThrowingStream<PostgresNotification, any Error>.Continuation] = []
      for channel in values.subscribers.values { all.append(contentsOf: channel.values) }
      values.subscribers = [:]
      return all
    }
    let error = PostgresError(code: .connectionLost, message: message)
    for subscriber in subscribers { subscriber.finish(throwing: error) }
  }

  static func consumeIdleInput(_ handle: ConnectionHandle, shared: SharedState) {
    guard let connection = handle.connection else { return }
    if PQconsumeInput(connection) == 0 || PQstatus(connection) == CONNECTION_BAD {
      markBroken(handle, shared: shared, message: errorMessage(connection))
      return
    }
    deliverNotifications(connection, shared: shared)
  }

  static func deliverNotifications(_ connection: OpaquePointer, shared: SharedState) {
    while let notification = PQnotifies(connection) {
      let received = PostgresNotification(
        channel: String(cString: notification.pointee.relname),
        payload: String(cString: notification.pointee.extra),
        senderProcessID: notification.pointee.be_pid)
      PQfreemem(notification)
      let subscribers = shared.values.withLock { values in
        values.subscribers[received.channel].map { Array($0.values) } ?? []
      }
      for subscriber in subscribers { subscriber.yield(received) }
    }
  }

  static func escapeIdentifier(_ identifier: String, _ connection: OpaquePointer) -> String? {
    let utf8 = Array(identifier.utf8)
    guard
      let escaped = utf8.withUnsafeBufferPointer({ buffer in
        buffer.withMemoryRebound(to: CChar.self) { PQescapeIdentifier(connection, $0.baseAddress, $0.count) }
      })
    else { return nil }
    defer { PQfreemem(escaped) }
    return String(cString: escaped)
  }

  static func execute(
    _ query: PostgresQuery, script: Bool, _ handle: ConnectionHandle, shared: SharedState
  ) throws -> PostgresRows {
    guard let connection = handle.connection, shared.values.withLock({ !$0.broken }) else {
      throw PostgresError(code: .connectionLost, message: "connection is closed or broken")
    }
    let result: OpaquePointer?
    if script {
      result = PQexec(connection, query.sql)
    } else {
      let name = try preparedName(query, connection, handle, shared)
      result = try withParameters(query.binds) { types, values, lengths, formats in
        if let name {
          return PQexecPrepared(connection, name, Int32(query.binds.count), values, lengths, formats, 0)
        }
        return PQexecParams(
          connection, query.sql, Int32(query.binds.count), types, values, lengths, formats, 0)
      }
    }
    defer { PQclear(result) }
    let transactionStatus = PQtransactionStatus(connection)
    shared.values.withLock {
      $0.idleInTransaction = transactionStatus == PQTRANS_INTRANS || transactionStatus == PQTRANS_INERROR
    }
    deliverNotifications(connection, shared: shared)

    guard let result else {
      let message = errorMessage(connection)
      if PQstatus(connection) == CONNECTION_BAD {
        markBroken(handle, shared: shared, message: message)
        throw PostgresError(code: .connectionLost, message: message)
      }
      throw PostgresError(code: .server, message: message)
    }
    switch PQresultStatus(result) {
    case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
      return rows(of: result)
    case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
      let error = serverError(result, connection)
      if PQstatus(connection) == CONNECTION_BAD {
        markBroken(handle, shared: shared, message: error.message)
        var lost = error
        lost.code = .connectionLost
        throw lost
      }
      throw error
    default:
      throw PostgresError(
        code: .invalidUsage,
        message: "unsupported result status \(String(cString: PQresStatus(PQresultStatus(result))))")
    }
  }

  /// The name of the server-side prepared statement for `query`'s SQL, preparing it on first use,
  /// so that the server parses and plans each distinct statement once per connection. `nil` when
  /// the connection's cache is full (the statement then runs unprepared).
  private static func preparedName(
    _ query: PostgresQuery, _ connection: OpaquePointer, _ handle: ConnectionHandle, _ shared: SharedState
  ) throws -> String? {
    if let name = handle.preparedStatements[query.sql] { return name }
    guard handle.preparedStatements.count < ConnectionHandle.preparedStatementLimit else { return nil }
    let name = "payments_\(handle.preparedStatements.count)"
    let types = query.binds.map { Oid($0.type.rawValue) }
    let result = PQprepare(connection, name, query.sql, Int32(types.count), types)
    defer { PQclear(result) }
    guard let result, PQresultStatus(result) == PGRES_COMMAND_OK else {
      guard let result else {
        let message = errorMessage(connection)
        if PQstatus(connection) == CONNECTION_BAD {
          markBroken(handle, shared: shared, message: message)
          throw PostgresError(code: .connectionLost, message: message)
        }
        throw PostgresError(code: .server, message: message)
      }
      let error = serverError(result, connection)
      if PQstatus(connection) == CONNECTION_BAD {
        markBroken(handle, shared: shared, message: error.message)
        var lost = error
        lost.code = .connectionLost
        throw lost
      }
      let transactionStatus = PQtransactionStatus(connection)
      shared.values.withLock {
        $0.idleInTransaction = transactionStatus == PQTRANS_INTRANS || transactionStatus == PQTRANS_INERROR
      }
      throw error
    }
    handle.preparedStatements[query.sql] = name
    return name
  }

  private static func rows(of result: OpaquePointer) -> PostgresRows {
    let rowCount = Int(PQntuples(result))
    let columnCount = Int(PQnfields(result))
    var columns: [PostgresColumn] = []
    columns.reserveCapacity(columnCount)
    for column in 0..<columnCount {
      columns.append(
        PostgresColumn(
          name: String(cString: PQfname(result, Int32(column))),
          type: PostgresDataType(rawValue: PQftype(result, Int32(column)))))
    }
    var rows: [PostgresRow] = []
    rows.reserveCapacity(rowCount)
    for row in 0..<rowCount {
      var total = 0
      for column in 0..<columnCount { total += Int(PQgetlength(result, Int32(row), Int32(column))) }
      var buffer = [UInt8]()
      buffer.reserveCapacity(total)
      var ranges: [Range<Int>?] = []
      ranges.reserveCapacity(columnCount)
      for column in 0..<columnCount {
        if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
          ranges.append(nil)
          continue
        }
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        let start = buffer.count
        PQgetvalue(result, Int32(row), Int32(column)).withMemoryRebound(to: UInt8.self, capacity: length) {
          buffer.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
        ranges.append(start..<buffer.count)
      }
      rows.append(PostgresRow(columns: columns, values: ranges.map { $0.map { buffer[$0] } }))
    }
    let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
    return PostgresRows(
      columns: columns, affectedRows: affected, commandTag: String(cString: PQcmdStatus(result)),
      storage: rows)
  }

  private static func serverError(_ result: OpaquePointer, _ connection: OpaquePointer) -> PostgresError {
    func field(_ code: Int32) -> String? {
      guard let pointer = PQresultErrorField(result, code) else { return nil }
      return String(cString: pointer)
    }
    let sqlState = field(Int32(UInt8(ascii: "C"))).map(SQLState.init(rawValue:))
    let message = field(Int32(UInt8(ascii: "M"))) ?? errorMessage(connection)
    return PostgresError(
      code: sqlState == .queryCanceled ? .cancelled : .server,
      message: message,
      sqlState: sqlState,
      detail: field(Int32(UInt8(ascii: "D"))),
      constraint: field(Int32(UInt8(ascii: "n"))),
      table: field(Int32(UInt8(ascii: "t"))))
  }

  static func errorMessage(_ connection: OpaquePointer) -> String {
    guard let pointer = PQerrorMessage(connection) else { return "unknown error" }
    let message = String(cString: pointer).trimmingSuffix(while: \.isWhitespace)
    return message.isEmpty ? "unknown error" : message
  }

  /// Lays the parameters out in one buffer (text values NUL-terminated, as libpq requires) and
  /// passes libpq's parallel arrays to `body`.
  private static func withParameters<Result>(
    _ binds: [PostgresBind],
    _ body: (
      UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
      UnsafePointer<Int32>?
    ) -> Result
  ) throws -> Result {
    var buffer: [UInt8] = []
    var offsets: [Int?] = []
    offsets.reserveCapacity(binds.count)
    for (index, bind) in binds.enumerated() {
      guard let bytes = bind.bytes else {
        offsets.append(nil)
        continue
      }
      if bind.format == .text, bytes.contains(0) {
        throw PostgresError(
          code: .invalidUsage,
          message: "parameter $\(index + 1) contains a NUL character, which PostgreSQL text cannot store")
      }
      offsets.append(buffer.count)
      buffer.append(contentsOf: bytes)
      if bind.format == .text { buffer.append(0) }
    }
    buffer.append(0)  // never empty, so an empty binary value still gets a non-NULL pointer
    let types = binds.map { Oid($0.type.rawValue) }
    let lengths = binds.map { Int32($0.bytes?.count ?? 0) }
    let formats = binds.map { $0.format == .binary ? Int32(1) : Int32(0) }
    return buffer.withUnsafeBufferPointer { storage in
      let base = storage.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
      let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in
        offset.flatMap { offset in base.map { $0 + offset } }
      }
      return body(types, pointers, lengths, formats)
    }
  }
}

private func withCStringArray<Result>(
  _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> Result
) -> Result {
  var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
  pointers.append(nil)
  defer { for pointer in pointers { free(pointer) } }
  return pointers.withUnsafeBufferPointer { buffer in
    buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
      body($0)
    }
  }
}

extension String {
  fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
    var result = self
    while let last = result.last, predicate(last) { result.removeLast() }
    return result
  }
}

/// Routes server notices (`NOTICE`, `WARNING`, and the `FATAL` message of a terminated session)
/// to the connection's logger instead of libpq's default, which prints to standard error.
final class NoticeSink {
  let logger: Logger
  init(logger: Logger) { self.logger = logger }
}

private func postgresNoticeReceiver(_ context: UnsafeMutableRawPointer?, _ result: OpaquePointer?) {
  guard let context, let result else { return }
  let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
  let severity = PQresultErrorField(result, Int32(UInt8(ascii: "V"))).map { String(cString: $0) } ?? "NOTICE"
  let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) } ?? ""
  let level: Logger.Level =
    severity == "WARNING" ? .warning : (severity == "FATAL" || severity == "PANIC" ? .error : .debug)
  sink.logger.log(level: level, "PostgreSQL \(severity): \(message)")
}

extension Duration {
  /// Whole milliseconds (at least 1), for server settings.
  var milliseconds: Int64 {
    max(1, components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
  }
}
