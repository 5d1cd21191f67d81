import COpenSSL

/// SHA-256 from OpenSSL's EVP interface.
public enum SHA256 {
  /// The 32-byte SHA-256 digest of `bytes`.
  public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    let ok =
      bytes.withContiguousStorageIfAvailable { buffer in
        EVP_Digest(buffer.baseAddress, buffer.count, &digest, nil, EVP_sha256(), nil)
      }
      ?? Array(bytes).withUnsafeBufferPointer { buffer in
        EVP_Digest(buffer.baseAddress, buffer.count, &digest, nil, EVP_sha256(), nil)
      }
    precondition(ok == 1, "EVP_Digest(SHA-256) failed")
    return digest
  }

  /// The SHA-256 digest of the UTF-8 bytes of `string`.
  public static func hash(_ string: String) -> [UInt8] { hash(Array(string.utf8)) }
}

/// Cryptographically secure random bytes (`RAND_bytes`).
public func secureRandomBytes(_ count: Int) -> [UInt8] {
  var bytes = [UInt8](repeating: 0, count: count)
  let ok = RAND_bytes(&bytes, Int32(count))
  precondition(ok == 1, "RAND_bytes failed")
  return bytes
}

/// Compares two byte strings in time that depends only on their lengths, not on where they
/// differ, so that a comparison of secrets leaks nothing through timing.
public func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
  guard lhs.count == rhs.count else { return false }
  var difference: UInt8 = 0
  for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
  return difference == 0
}

/// HMAC-SHA256 (OpenSSL): the 32-byte authentication code of `message` under `key`.
public func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
  var code = [UInt8](repeating: 0, count: 32)
  var length: UInt32 = 32
  let result = key.withUnsafeBufferPointer { keyBuffer in
    message.withUnsafeBufferPointer { messageBuffer in
      HMAC(
        EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count), messageBuffer.baseAddress,
        messageBuffer.count,
        &code, &length)
    }
  }
  precondition(result != nil && length == 32, "HMAC-SHA256 failed")
  return code
}

/// Lower-case hexadecimal digits of `bytes`.
public func hexString(_ bytes: [UInt8]) -> String {
  let digits = Array("0123456789abcdef".utf8)
  var text = [UInt8]()
  text.reserveCapacity(bytes.count * 2)
  for byte in bytes {
    text.append(digits[Int(byte >> 4)])
    text.append(digits[Int(byte & 0x0F)])
  }
  return String(decoding: text, as: UTF8.self)
}
