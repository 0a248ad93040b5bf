// The JS half of the Worker's RS256 signature check (src/platform.rs): the
// runtime's WebCrypto, in native code, instead of RSA in wasm (about 4 ms of
// CPU per check there).

/**
 * Imported keys by the id wasm gave them (`importRs256`): each a promise
 * of the `CryptoKey`, or of null when the runtime refused the key.
 */
const keys = new Map();

/** Bytes as unpadded base64url, as a JWK writes `n` and `e`. */
function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Imports the RSA public key (`modulus`, `exponent`: big-endian bytes,
 * views of wasm memory read before this returns) under `id`, replacing
 * any key that had it. Returns at once; checks under `id` wait for the
 * import.
 */
export function importRs256(id, modulus, exponent) {
  const jwk = { kty: "RSA", n: base64url(modulus), e: base64url(exponent), alg: "RS256", ext: true };
  keys.set(
    id,
    crypto.subtle
      .importKey("jwk", jwk, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"])
      .catch(() => null),
  );
}

/**
 * Whether `signature` is `message`'s RSASSA-PKCS1-v1_5 / SHA-256 signature
 * under the key imported as `id`. The byte arguments are views of wasm
 * memory, copied here before anything can move it, and the key is taken
 * before the first wait, so a later import under the same id does not
 * change this check. Never rejects: an unknown id or a key the runtime
 * refused is a failed check.
 */
export async function verifyRs256(id, message, signature) {
  const data = message.slice();
  const sig = signature.slice();
  const imported = keys.get(id);
  try {
    const key = await imported;
    if (!key) return false;
    return await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig, data);
  } catch {
    return false;
  }
}
