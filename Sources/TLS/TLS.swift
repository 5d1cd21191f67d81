import COpenSSL

/// A TLS failure: the OpenSSL error queue's text, or what this module found wrong.
public struct TLSError: Error, Sendable, CustomStringConvertible {
  public let description: String

  init(_ context: String) {
    var messages: [String] = []
    while case let code = ERR_get_error(), code != 0 {
      var buffer = [CChar](repeating: 0, count: 256)
      ERR_error_string_n(code, &buffer, buffer.count)
      messages.append(
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    description = messages.isEmpty ? context : "\(context): \(messages.joined(separator: "; "))"
  }
}

/// TLS settings shared by many connections (an `SSL_CTX`): certificates, trust, ALPN `h2`,
/// TLS 1.2 or later.
public final class TLSContext: @unchecked Sendable {
  // Safe: the SSL_CTX is configured in init and only read afterwards (OpenSSL allows SSL_new
  // from many threads on a configured context).
  let context: OpaquePointer
  let isServer: Bool

  /// A server context presenting the PEM certificate chain and private key at these paths.
  /// With `clientCertificateAuthorityPath` (PEM), it requires every client to present a
  /// certificate issued by one of those authorities (mutual TLS); a client without one fails the
  /// handshake.
  public static func server(
    certificateChainPath: String, privateKeyPath: String, clientCertificateAuthorityPath: String? = nil
  ) throws(TLSError) -> TLSContext {
    let context = try TLSContext(isServer: true)
    try context.use(certificateChainPath: certificateChainPath, privateKeyPath: privateKeyPath)
    if let clientCertificateAuthorityPath {
      guard SSL_CTX_load_verify_locations(context.context, clientCertificateAuthorityPath, nil) == 1 else {
        throw TLSError(
          "cannot load the client certificate authorities from \(clientCertificateAuthorityPath)")
      }
      SSL_CTX_set_verify(context.context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
      // Verifying peers needs a session ID context, or a client resuming a session fails its
      // handshake (OpenSSL: SSL_CTX_set_session_id_context).
      let sessionContext = Array("payments".utf8)
      _ = SSL_CTX_set_session_id_context(context.context, sessionContext, UInt32(sessionContext.count))
    }
    SSL_CTX_set_alpn_select_cb(context.context, selectH2, nil)
    return context
  }

  /// A client context that trusts the PEM certificates at `trustedCertificatesPath`, or the
  /// system's trust store when `nil`. With `certificateChainPath` and `privateKeyPath` it
  /// presents that certificate to servers that ask for one (mutual TLS). `verifyingServer: false`
  /// accepts any server certificate (for debugging tools only: it offers no protection).
  public static func client(
    trustedCertificatesPath: String? = nil, certificateChainPath: String? = nil,
    privateKeyPath: String? = nil,
    verifyingServer: Bool = true
  ) throws(TLSError) -> TLSContext {
    let context = try TLSContext(isServer: false)
    if let trustedCertificatesPath {
      guard SSL_CTX_load_verify_locations(context.context, trustedCertificatesPath, nil) == 1 else {
        throw TLSError("cannot load trusted certificates from \(trustedCertificatesPath)")
      }
    } else {
      SSL_CTX_set_default_verify_paths(context.context)
    }
    // Without verification (a debugging tool's --insecure) any certificate and name is accepted.
    SSL_CTX_set_verify(context.context, verifyingServer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
    switch (certificateChainPath, privateKeyPath) {
    case (let chain?, let key?): try context.use(certificateChainPath: chain, privateKeyPath: key)
    case (nil, nil): break
    default: throw TLSError("a client certificate needs both its chain and its private key")
    }
    return context
  }

  private func use(certificateChainPath: String, privateKeyPath: String) throws(TLSError) {
    guard SSL_CTX_use_certificate_chain_file(context, certificateChainPath) == 1 else {
      throw TLSError("cannot load the certificate chain \(certificateChainPath)")
    }
    guard SSL_CTX_use_PrivateKey_file(context, privateKeyPath, SSL_FILETYPE_PEM) == 1,
      SSL_CTX_check_private_key(context) == 1
    else {
      throw TLSError("cannot load the private key \(privateKeyPath) (or it does not match the certificate)")
    }
  }

  private init(isServer: Bool) throws(TLSError) {
    guard let context = SSL_CTX_new(isServer ? TLS_server_method() : TLS_client_method()) else {
      throw TLSError("SSL_CTX_new failed")
    }
    self.context = context
    self.isServer = isServer
    _ = payments_ssl_ctx_set_min_tls12(context)
    _ = payments_ssl_ctx_set_mode(
      context, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
  }

  deinit { SSL_CTX_free(context) }
}

/// The server's ALPN choice: `h2` or nothing (gRPC needs HTTP/2, so the handshake then fails).
private func selectH2(
  _ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
  _ outLength: UnsafeMutablePointer<UInt8>?,
  _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32, _ argument: UnsafeMutableRawPointer?
) -> Int32 {
  guard let offered else { return SSL_TLSEXT_ERR_ALERT_FATAL }
  var index = 0
  while index < Int(offeredLength) {
    let length = Int(offered[index])
    if length == 2 && index + 2 < Int(offeredLength) && offered[index + 1] == 0x68
      && offered[index + 2] == 0x32
    {
      out?.pointee = offered + index + 1
      outLength?.pointee = 2
      return SSL_TLSEXT_ERR_OK
    }
    index += 1 + length
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// One TLS connection without I/O: ciphertext from the socket goes in through
/// ``receiveCiphertext(_:)``, plaintext comes out of ``readPlaintext()``; plaintext to send goes
/// in through ``writePlaintext(_:)`` and ciphertext for the socket comes out of
/// ``takeCiphertext()``. Used from one thread at a time (the connection's event loop).
public final class TLSConnection {
  private let ssl: OpaquePointer
  private let incoming: OpaquePointer
  private let outgoing: OpaquePointer
  private var pendingPlaintext: [UInt8] = []
  /// True once the handshake finished (and ALPN chose `h2`).
  public private(set) var isEstablished = false

  /// A connection for `context`; a client names the server it expects (`serverName`, for SNI
  /// and certificate verification).
  public init(context: TLSContext, serverName: String? = nil) throws(TLSError) {
    guard let ssl = SSL_new(context.context), let incoming = BIO_new(BIO_s_mem()),
      let outgoing = BIO_new(BIO_s_mem())
    else { throw TLSError("SSL_new failed") }
    self.ssl = ssl
    self.incoming = incoming
    self.outgoing = outgoing
    SSL_set_bio(ssl, incoming, outgoing)
    if context.isServer {
      SSL_set_accept_state(ssl)
    } else {
      var protocols: [UInt8] = [2, 0x68, 0x32]
      _ = SSL_set_alpn_protos(ssl, &protocols, UInt32(protocols.count))
      if let serverName {
        _ = payments_ssl_set_tlsext_host_name(ssl, serverName)
        _ = SSL_set1_host(ssl, serverName)
      }
      SSL_set_connect_state(ssl)
    }
  }

  deinit { SSL_free(ssl) }  // frees both BIOs too

  /// Feeds ciphertext read from the socket.
  public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
    _ = BIO_write(incoming, base, Int32(bytes.count))
  }

  /// Advances the handshake and returns whatever plaintext is available.
  public func readPlaintext() throws(TLSError) -> [UInt8] {
    try advanceHandshake()
    guard isEstablished else { return [] }
    var plaintext: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 << 10)
    while true {
      let count = SSL_read(ssl, &buffer, Int32(buffer.count))
      if count > 0 {
        plaintext += buffer[0..<Int(count)]
        continue
      }
      let error = SSL_get_error(ssl, count)
      if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { break }
      if error == SSL_ERROR_ZERO_RETURN { break }
      throw TLSError("TLS read failed")
    }
    return plaintext
  }

  /// Queues plaintext to send (held until the handshake finished).
  public func writePlaintext(_ bytes: [UInt8]) throws(TLSError) {
    pendingPlaintext += bytes
    try flushPlaintext()
  }

  /// Ciphertext waiting for the socket.
  public func takeCiphertext() throws(TLSError) -> [UInt8] {
    try advanceHandshake()
    try flushPlaintext()
    let pending = payments_bio_pending(outgoing)
    guard pending > 0 else { return [] }
    var ciphertext = [UInt8](repeating: 0, count: pending)
    let count = BIO_read(outgoing, &ciphertext, Int32(pending))
    return count > 0 ? Array(ciphertext[0..<Int(count)]) : []
  }

  private func advanceHandshake() throws(TLSError) {
    guard !isEstablished else { return }
    let result = SSL_do_handshake(ssl)
    if result == 1 {
      var protocolName: UnsafePointer<UInt8>?
      var length: UInt32 = 0
      SSL_get0_alpn_selected(ssl, &protocolName, &length)
      guard length == 2, let protocolName, protocolName[0] == 0x68, protocolName[1] == 0x32 else {
        throw TLSError("the peer did not agree to HTTP/2 (ALPN h2)")
      }
      isEstablished = true
      return
    }
    let error = SSL_get_error(ssl, result)
    if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
    throw TLSError("TLS handshake failed")
  }

  private func flushPlaintext() throws(TLSError) {
    guard isEstablished, !pendingPlaintext.isEmpty else { return }
    let count = pendingPlaintext.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
    if count > 0 {
      pendingPlaintext.removeFirst(Int(count))
      return
    }
    let error = SSL_get_error(ssl, count)
    if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
    throw TLSError("TLS write failed")
  }
}
