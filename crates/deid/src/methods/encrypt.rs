//! `encrypt`: AES-CBC with PKCS#7 padding under `encryptKey` (16, 24 or 32 bytes of UTF-8:
//! AES-128, -192 or -256), a fresh random 16-byte IV per value, output
//! `Base64(IV ‖ ciphertext)`. Compatible with the original both ways; [`decrypt`] reverses it.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;

/// Why a text could not be decrypted (never says anything about the text itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The key is not 16, 24 or 32 bytes long.
    #[error("the key must be 16, 24 or 32 bytes")]
    KeyLength,
    /// The text is not Base64 of an IV and whole blocks.
    #[error("not Base64 of an IV and AES blocks")]
    Format,
    /// The padding is wrong (wrong key or damaged text).
    #[error("bad padding: wrong key or damaged ciphertext")]
    Padding,
    /// The plaintext is not UTF-8.
    #[error("the plaintext is not UTF-8")]
    Utf8,
}

fn encrypt_with<C>(key: &[u8], iv: &[u8; 16], plain: &[u8]) -> Option<Vec<u8>>
where
    cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
    C: aes::cipher::BlockCipherEncrypt,
{
    Some(
        cbc::Encryptor::<C>::new_from_slices(key, iv)
            .ok()?
            .encrypt_padded_vec::<Pkcs7>(plain),
    )
}

fn decrypt_with<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, DecryptError>
where
    cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
    C: aes::cipher::BlockCipherDecrypt,
{
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| DecryptError::KeyLength)?
        .decrypt_padded_vec::<Pkcs7>(data)
        .map_err(|_| DecryptError::Padding)
}

/// Encrypts `text` under `key` with a random IV drawn from `rng`; `None` when the key is not
/// 16, 24 or 32 bytes long (the configuration checks this).
pub fn encrypt<R: Rng + ?Sized>(key: &str, text: &str, rng: &mut R) -> Option<String> {
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let key = key.as_bytes();
    let cipher = match key.len() {
        16 => encrypt_with::<aes::Aes128>(key, &iv, text.as_bytes())?,
        24 => encrypt_with::<aes::Aes192>(key, &iv, text.as_bytes())?,
        32 => encrypt_with::<aes::Aes256>(key, &iv, text.as_bytes())?,
        _ => return None,
    };
    let mut out = Vec::with_capacity(16 + cipher.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&cipher);
    Some(STANDARD.encode(out))
}

/// Decrypts what [`encrypt`] (or the original tool) produced.
pub fn decrypt(key: &str, encrypted: &str) -> Result<String, DecryptError> {
    let data = STANDARD
        .decode(encrypted)
        .map_err(|_| DecryptError::Format)?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err(DecryptError::Format);
    }
    let (iv, cipher) = data.split_at(16);
    let key = key.as_bytes();
    let plain = match key.len() {
        16 => decrypt_with::<aes::Aes128>(key, iv, cipher)?,
        24 => decrypt_with::<aes::Aes192>(key, iv, cipher)?,
        32 => decrypt_with::<aes::Aes256>(key, iv, cipher)?,
        _ => return Err(DecryptError::KeyLength),
    };
    String::from_utf8(plain).map_err(|_| DecryptError::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const KEY: &str = "704ab12c8e3e46d4bea600ef62a6bec7";

    #[test]
    fn decrypts_the_originals_output() {
        assert_eq!(
            decrypt(KEY, "qpxGp6T9DP7wB0EYPQwOYVrScQ/pq3c0D+JQ+hjnfkY="),
            Ok("abc".to_string())
        );
    }

    #[test]
    fn round_trips_with_every_key_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for key in ["0123456789abcdef", "0123456789abcdef01234567", KEY] {
            for text in ["", "abc", "ÆŊŋßſ♫∅", &"x".repeat(100)] {
                let e = encrypt(key, text, &mut rng).unwrap();
                assert_eq!(decrypt(key, &e).as_deref(), Ok(text));
            }
        }
        // A fresh IV each time.
        assert_ne!(encrypt(KEY, "abc", &mut rng), encrypt(KEY, "abc", &mut rng));
        assert_eq!(encrypt("0123456789", "abc", &mut rng), None);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decrypt(KEY, "not base64!"), Err(DecryptError::Format));
        assert_eq!(
            decrypt("short", "qpxGp6T9DP7wB0EYPQwOYVrScQ/pq3c0D+JQ+hjnfkY="),
            Err(DecryptError::KeyLength)
        );
        assert!(
            decrypt(
                "0123456789abcdef0123456789abcdef",
                "qpxGp6T9DP7wB0EYPQwOYVrScQ/pq3c0D+JQ+hjnfkY="
            )
            .is_err()
        );
    }
}
