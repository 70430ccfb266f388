//! Trove's RPC encryption primitive (AES-256-CBC keyed by the hex MD5 of a key string).
//!
//! Wire compatibility with Trove's `crypto_utils` is the whole point of this module:
//! * AES key = the 32 ASCII characters of the lowercase hex MD5 digest of the UTF-8 key
//!   string (hence AES-256, not AES-128 with the raw digest);
//! * IV = 16 random bytes from the OS CSPRNG, prepended to the ciphertext;
//! * PKCS#7 padding, always 1..=16 bytes;
//! * the result is standard base64 (with `=` padding, no line breaks).
//!
//! Decryption validates the padding (Trove does not), which never rejects anything
//! Trove produces because Trove always pads correctly.
//!
//! It also holds the per-instance key helpers: [`generate_random_key`] (32 characters of
//! `[A-Za-z0-9]` drawn from the OS CSPRNG) and [`encrypt_instance_key`] /
//! [`decrypt_instance_key`] for the `instances.encrypted_key` column.
//!
//! This module does not know about RPC messages; the serializers in `trove-rpc` apply it
//! to JSON argument values and contexts.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use md5::{Digest, Md5};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Length in bytes of the IV prepended to every ciphertext.
pub const IV_LEN: usize = 16;

/// Length in characters of a key made by [`generate_random_key`].
pub const GENERATED_KEY_LEN: usize = 32;

/// Why a ciphertext could not be decrypted. Deliberately carries no plaintext or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The text is not valid standard base64.
    #[error("ciphertext is not valid base64")]
    Base64,
    /// The decoded bytes are too short or not a whole number of AES blocks.
    #[error("ciphertext has an invalid length ({0} bytes)")]
    Length(usize),
    /// The padding is invalid, almost always because the key is wrong.
    #[error("ciphertext does not decrypt with this key (bad padding)")]
    Padding,
    /// The plaintext of an instance key is not UTF-8 text.
    #[error("decrypted instance key is not UTF-8 text")]
    Utf8,
}

/// The 32-byte AES key Trove derives from a key string: the lowercase hex MD5 digest as ASCII.
pub fn derive_aes_key(key: &str) -> [u8; 32] {
    let digest = Md5::digest(key.as_bytes());
    let mut out = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0x0f) as usize];
    }
    out
}

/// The lowercase hex MD5 of `key` as a string (what Trove uses as the AES key).
pub fn md5_hex(key: &str) -> String {
    String::from_utf8(derive_aes_key(key).to_vec()).expect("hex digits are ASCII")
}

/// Encrypts `plaintext` with `key` and a fresh random IV; returns base64 of `IV || ciphertext`.
pub fn encrypt(key: &str, plaintext: &[u8]) -> String {
    let mut iv = [0u8; IV_LEN];
    OsRng.fill_bytes(&mut iv);
    encrypt_with_iv(key, plaintext, &iv)
}

/// Encrypts with a caller-chosen IV. Only for reproducible test vectors: real traffic must
/// use [`encrypt`], which draws the IV from the CSPRNG.
pub fn encrypt_with_iv(key: &str, plaintext: &[u8], iv: &[u8; IV_LEN]) -> String {
    let aes_key = derive_aes_key(key);
    let ct =
        Aes256CbcEnc::new(&aes_key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut out = Vec::with_capacity(IV_LEN + ct.len());
    out.extend_from_slice(iv);
    out.extend_from_slice(&ct);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Decrypts base64 text produced by [`encrypt`] or by Trove; returns the plaintext bytes.
pub fn decrypt(key: &str, ciphertext_b64: &str) -> Result<Vec<u8>, CryptoError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(ciphertext_b64.trim())
        .map_err(|_| CryptoError::Base64)?;
    if raw.len() < 2 * IV_LEN || raw.len() % IV_LEN != 0 {
        return Err(CryptoError::Length(raw.len()));
    }
    let (iv, ct) = raw.split_at(IV_LEN);
    let aes_key = derive_aes_key(key);
    let iv: [u8; IV_LEN] = iv.try_into().expect("split at IV_LEN");
    Aes256CbcDec::new(&aes_key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .map_err(|_| CryptoError::Padding)
}

/// Makes a new per-instance RPC key: 32 characters drawn uniformly from `[A-Za-z0-9]`
/// with the OS CSPRNG (Trove uses a non-cryptographic generator; the format is the same).
pub fn generate_random_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = OsRng;
    (0..GENERATED_KEY_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Encrypts a per-instance key for the `instances.encrypted_key` column with
/// `inst_rpc_key_encr_key` (the raw key text, no JSON quoting, as Trove does).
pub fn encrypt_instance_key(instance_key: &str, inst_rpc_key_encr_key: &str) -> String {
    encrypt(inst_rpc_key_encr_key, instance_key.as_bytes())
}

/// Decrypts an `instances.encrypted_key` value back to the per-instance key text.
pub fn decrypt_instance_key(
    encrypted_key: &str,
    inst_rpc_key_encr_key: &str,
) -> Result<String, CryptoError> {
    let bytes = decrypt(inst_rpc_key_encr_key, encrypted_key)?;
    String::from_utf8(bytes).map_err(|_| CryptoError::Utf8)
}

/// The `instances.encrypted_key` value for a new instance row, following Trove's rule:
/// with `enable_secure_rpc_messaging` a fresh key ([`generate_random_key`]) encrypted
/// with `inst_rpc_key_encr_key`; without it `None` (NULL: the instance talks in clear
/// forever).
pub fn new_encrypted_instance_key(
    enable_secure_rpc_messaging: bool,
    inst_rpc_key_encr_key: &str,
) -> Option<String> {
    enable_secure_rpc_messaging
        .then(|| encrypt_instance_key(&generate_random_key(), inst_rpc_key_encr_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const TM_KEY: &str = "bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz";
    const INST_ENCR_KEY: &str = "emYjgHFqfXNB1NGehAFIUeoyw4V4XwWHEaKP";

    #[test]
    fn md5_hex_vector() {
        assert_eq!(md5_hex(TM_KEY), "b1d3265cbd11984d9e1852430a4337a4");
    }

    #[test]
    fn spec_vectors() {
        let cases: [(&str, &[u8], &str); 3] = [
            (TM_KEY, b"\"abc\"", "AAECAwQFBgcICQoLDA0OD8LD9gNUqjXZyic+eeruVSM="),
            (TM_KEY, b"{\"a\": 1}", "AAECAwQFBgcICQoLDA0ODyagjScc3mh+SvwUrY8/0DU="),
            (
                INST_ENCR_KEY,
                b"eRz43LwE6eaxIbBlA2pNukzPjSdcQkVi",
                "AAECAwQFBgcICQoLDA0OD7LGz8DobmSBi7V0wIYJF5Y7RMD9m0WDmbV0begBW9M8Pk9pd0pyjasPLNreealCKA==",
            ),
        ];
        for (key, pt, expected) in cases {
            assert_eq!(encrypt_with_iv(key, pt, &IV), expected);
            assert_eq!(decrypt(key, expected).unwrap(), pt);
        }
    }

    #[test]
    fn instance_key_at_rest_vector() {
        let stored = "AAECAwQFBgcICQoLDA0OD7LGz8DobmSBi7V0wIYJF5Y7RMD9m0WDmbV0begBW9M8Pk9pd0pyjasPLNreealCKA==";
        assert_eq!(stored.len(), 88);
        assert_eq!(
            decrypt_instance_key(stored, INST_ENCR_KEY).unwrap(),
            "eRz43LwE6eaxIbBlA2pNukzPjSdcQkVi"
        );
    }

    #[test]
    fn random_iv_round_trip_and_block_boundaries() {
        for len in [0usize, 1, 15, 16, 17, 31, 32, 100] {
            let pt = vec![b'x'; len];
            let a = encrypt(TM_KEY, &pt);
            let b = encrypt(TM_KEY, &pt);
            assert_ne!(a, b, "IV must be random");
            assert_eq!(decrypt(TM_KEY, &a).unwrap(), pt);
            // Full block of padding when the length is a multiple of 16.
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&a)
                .unwrap();
            assert_eq!(raw.len(), IV_LEN + (len / 16 + 1) * 16);
        }
    }

    #[test]
    fn generated_keys_and_instance_key_round_trip() {
        let k1 = generate_random_key();
        let k2 = generate_random_key();
        assert_eq!(k1.len(), 32);
        assert!(k1.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(k1, k2);
        let stored = encrypt_instance_key(&k1, INST_ENCR_KEY);
        assert_eq!(stored.len(), 88);
        assert_eq!(decrypt_instance_key(&stored, INST_ENCR_KEY).unwrap(), k1);
    }

    #[test]
    fn new_instance_key_follows_enable_secure_rpc_messaging() {
        assert_eq!(new_encrypted_instance_key(false, INST_ENCR_KEY), None);
        let stored = new_encrypted_instance_key(true, INST_ENCR_KEY).unwrap();
        let key = decrypt_instance_key(&stored, INST_ENCR_KEY).unwrap();
        assert_eq!(key.len(), GENERATED_KEY_LEN);
    }

    #[test]
    fn wrong_key_and_garbage_are_rejected() {
        let ct = encrypt(TM_KEY, b"{\"secret\": true}");
        // A wrong key almost always breaks the padding; try a few to be deterministic enough.
        let bad = (0..8)
            .filter(|i| decrypt(&format!("wrong{i}"), &ct).is_err())
            .count();
        assert!(bad >= 6);
        assert_eq!(decrypt(TM_KEY, "not base64!!"), Err(CryptoError::Base64));
        assert_eq!(decrypt(TM_KEY, "AAEC"), Err(CryptoError::Length(3)));
        assert!(decrypt(TM_KEY, "\"abc\"").is_err());
    }
}
