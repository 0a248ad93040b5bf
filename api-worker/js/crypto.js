// The JS half of the Worker's RS256 signature check (src/platform.rs): the
// runtime's WebCrypto, in native code, instead of RSA in wasm (about 4 ms of
// CPU per check there).

/** Imported keys by modulus and exponent; Access has one or two at a time. */
const keys = new Map();
/** Past this many, keys are imported per check and not kept. */
const MAX_KEYS = 16;

/** Bytes as unpadded base64url, as a JWK writes `n` and `e`. */
function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Whether `signature` is `message`'s RSASSA-PKCS1-v1_5 / SHA-256 signature
 * under the public key (`modulus`, `exponent`, big-endian bytes). The byte
 * arguments are views of wasm memory, copied here before anything can move
 * it. Never rejects: a key the runtime refuses is a failed check.
 */
export async function verifyRs256(modulus, exponent, message, signature) {
  const data = message.slice();
  const sig = signature.slice();
  const n = base64url(modulus);
  const e = base64url(exponent);
  const id = `${n}.${e}`;
  try {
    let key = keys.get(id);
    if (key === undefined) {
      key = await crypto.subtle.importKey(
        "jwk",
        { kty: "RSA", n, e, alg: "RS256", ext: true },
        { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
        false,
        ["verify"],
      );
      if (keys.size < MAX_KEYS) keys.set(id, key);
    }
    return await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig, data);
  } catch {
    return false;
  }
}
