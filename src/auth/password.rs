//! Password hashes: argon2id for new passwords; argon2 and Django's PBKDF2 strings verified, so
//! accounts imported from django-ftpserver keep their passwords.
//!
//! Formats verified by [`verify_password`]:
//! - PHC strings `$argon2id$v=19$m=...,t=...,p=...$salt$hash` (also `$argon2i$`, `$argon2d$`);
//! - Django's `argon2$argon2id$...`: the PHC string with `argon2` in place of its leading `$`;
//! - Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` and `pbkdf2_sha1$...`;
//! - Django's `bcrypt_sha256$$2b$...` (bcrypt of the hex SHA-256 of the password) and
//!   `bcrypt$$2b$...` (bcrypt of the password itself);
//! - Django's `scrypt$<n>$<salt>$<r>$<p>$<base64 hash>`.
//!
//! Anything else (Django's unusable `!...`, its unsalted MD5 and SHA-1 hashers, garbage) never
//! verifies.
//! These functions are slow on purpose: call them on the blocking pool, never on the runtime.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::rngs::OsRng;
use subtle::ConstantTimeEq;

/// A valid argon2id hash of a random password nobody knows, made once. Verifying a login for an
/// unknown user against it costs as much as verifying a real account, so response times do not
/// tell which user names exist.
pub static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password(&random_secret()));

/// Upper bounds on the cost a stored hash may ask for. Real hashes sit far below them (Django
/// 5.2: 1,000,000 PBKDF2 iterations, argon2 at 100 MiB); a corrupt or hostile row must not
/// pin a CPU for minutes or exhaust memory.
const MAX_PBKDF2_ITERATIONS: u32 = 50_000_000;
const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ARGON2_PASSES: u32 = 64;
const MAX_ARGON2_LANES: u32 = 64;
/// bcrypt's cost is the log2 of its rounds; Django writes 12.
const MAX_BCRYPT_COST: u32 = 16;
/// scrypt's memory is 128·n·r·p bytes; Django writes n=16384, r=8, p=1 (16 MiB).
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
const MAX_SCRYPT_PARALLELISM: u32 = 16;

/// The argon2id cost of new password hashes. The default is the `argon2` crate's: 19 MiB,
/// 2 passes, 1 lane (OWASP's recommendation). A server can be set to another cost (a small host, a
/// login-heavy site); hashes of any other cost, and Django's formats, are replaced with this cost
/// at the user's next successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub passes: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
        }
    }
}

impl HashCost {
    /// The argon2 parameters, or why this cost is not one argon2 (or ferry) accepts.
    pub fn params(self) -> Result<Params, String> {
        if self.memory_kib > MAX_ARGON2_MEMORY_KIB || self.passes > MAX_ARGON2_PASSES {
            return Err(format!(
                "password hash cost too high: at most {MAX_ARGON2_MEMORY_KIB} KiB and \
                 {MAX_ARGON2_PASSES} passes"
            ));
        }
        Params::new(self.memory_kib, self.passes, 1, None).map_err(|e| {
            format!(
                "invalid password hash cost ({} KiB, {} passes): {e}; use at least 8 KiB and 1 pass",
                self.memory_kib, self.passes
            )
        })
    }

    /// Hashes a new password as an argon2id PHC string with this cost and a random salt.
    ///
    /// # Panics
    /// If the cost is invalid: check it with [`HashCost::params`] when it is configured.
    pub fn hash(self, password: &str) -> String {
        let params = self.params().expect("a validated password hash cost");
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            // Only impossible inputs fail here (a password over 4 GiB).
            .expect("argon2id with valid parameters hashes any password")
            .to_string()
    }

    /// Whether a hash that just verified should be replaced by a fresh [`HashCost::hash`]: true
    /// for everything but an argon2id PHC string of exactly this cost.
    pub fn needs_rehash(self, stored: &str) -> bool {
        let Ok(hash) = PasswordHash::new(stored) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        hash.algorithm != Algorithm::Argon2id.ident()
            || hash.version != Some(Version::V0x13.into())
            || params.m_cost() != self.memory_kib
            || params.t_cost() != self.passes
            || params.p_cost() != 1
            || params.output_len() != Some(Params::DEFAULT_OUTPUT_LEN)
    }
}

/// 32 random bytes in hex: a password nobody knows, for an account whose real password hash is
/// stored right after.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    hex::encode(bytes)
}

/// Hashes a new password with the default [`HashCost`].
pub fn hash_password(password: &str) -> String {
    HashCost::default().hash(password)
}

/// Whether `password` matches the `stored` hash. Unknown or malformed hashes give `false`.
pub fn verify_password(stored: &str, password: &str) -> bool {
    if stored.starts_with("$argon2") {
        verify_argon2(stored, password)
    } else if let Some(phc_without_dollar) = stored.strip_prefix("argon2$") {
        verify_argon2(&format!("${phc_without_dollar}"), password)
    } else if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        verify_django_pbkdf2(Pbkdf2Digest::Sha256, rest, password)
    } else if let Some(rest) = stored.strip_prefix("pbkdf2_sha1$") {
        verify_django_pbkdf2(Pbkdf2Digest::Sha1, rest, password)
    } else if let Some(bcrypt) = stored.strip_prefix("bcrypt_sha256$") {
        // Django hashes first so that long passwords are not cut at bcrypt's 72 bytes.
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(password.as_bytes()));
        verify_bcrypt(bcrypt, digest.as_bytes())
    } else if let Some(bcrypt) = stored.strip_prefix("bcrypt$") {
        verify_bcrypt(bcrypt, password.as_bytes())
    } else if let Some(rest) = stored.strip_prefix("scrypt$") {
        verify_django_scrypt(rest, password)
    } else {
        false
    }
}

/// `$2b$12$<salt and hash>`, the modular crypt string bcrypt writes.
fn verify_bcrypt(stored: &str, password: &[u8]) -> bool {
    let cost = stored
        .split('$')
        .nth(2)
        .and_then(|cost| cost.parse::<u32>().ok());
    if cost.is_none_or(|cost| cost > MAX_BCRYPT_COST) {
        return false;
    }
    bcrypt::verify(password, stored).unwrap_or(false)
}

/// `<n>$<salt>$<r>$<p>$<base64 hash>`, after Django's `scrypt$`: scrypt with the salt's text as
/// its bytes.
fn verify_django_scrypt(rest: &str, password: &str) -> bool {
    let fields: Vec<&str> = rest.split('$').collect();
    let [n, salt, r, p, expected] = fields[..] else {
        return false;
    };
    let (Ok(n), Ok(r), Ok(p)) = (n.parse::<u64>(), r.parse::<u32>(), p.parse::<u32>()) else {
        return false;
    };
    let Ok(expected) = STANDARD.decode(expected) else {
        return false;
    };
    let memory = 128u64
        .saturating_mul(n)
        .saturating_mul(u64::from(r))
        .saturating_mul(u64::from(p));
    if !n.is_power_of_two()
        || n < 2
        || salt.is_empty()
        || expected.is_empty()
        || expected.len() > 128
        || p > MAX_SCRYPT_PARALLELISM
        || memory > MAX_SCRYPT_MEMORY
    {
        return false;
    }
    let Ok(params) = scrypt::Params::new(n.trailing_zeros() as u8, r, p, expected.len()) else {
        return false;
    };
    let mut computed = vec![0u8; expected.len()];
    scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut computed).is_ok()
        && bool::from(computed.ct_eq(&expected))
}

fn verify_argon2(phc: &str, password: &str) -> bool {
    let Ok(mut hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || params.t_cost() > MAX_ARGON2_PASSES
        || params.p_cost() > MAX_ARGON2_LANES
    {
        return false;
    }
    // Hashes from before Argon2 1.3 carry no `v=` (Django 1.10 wrote them); the reference
    // implementation reads that as version 0x10, while the argon2 crate would assume 0x13.
    hash.version.get_or_insert(Version::V0x10.into());
    let (Ok(algorithm), Some(Ok(version)), Some(salt), Some(expected)) = (
        Algorithm::try_from(hash.algorithm),
        hash.version.map(Version::try_from),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut computed = [0u8; 64];
    let Some(computed) = computed.get_mut(..expected.len()) else {
        return false;
    };
    // The algorithm, version and costs all come from the hash itself. The working memory (19 MiB
    // at the default cost) is the calling thread's, reused from check to check: allocating it
    // anew each time makes the C allocator keep every freed block, and a burst of logins would
    // leave the process hundreds of megabytes larger.
    let hashed = ARGON2_MEMORY.with_borrow_mut(|memory| {
        memory.clear();
        memory.resize(params.block_count(), Block::default());
        let hashed = Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                computed,
                memory.as_mut_slice(),
            );
        if memory.capacity() > KEPT_ARGON2_BLOCKS {
            *memory = Vec::new();
        }
        hashed
    });
    hashed.is_ok() && bool::from(computed.ct_eq(expected.as_bytes()))
}

/// Blocks of argon2 working memory a thread keeps between checks: the default cost's 19 MiB with
/// room to spare. A stored hash that asks for more gets it for its check only.
const KEPT_ARGON2_BLOCKS: usize = 32 * 1024;

thread_local! {
    static ARGON2_MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The HMAC digest of one of Django's PBKDF2 hashers.
#[derive(Clone, Copy)]
enum Pbkdf2Digest {
    Sha256,
    Sha1,
}

impl Pbkdf2Digest {
    fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha1 => 20,
        }
    }

    fn derive(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match self {
            Self::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, out),
            Self::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, out),
        }
    }
}

/// Django's `PBKDF2PasswordHasher` family: `<iterations>$<salt>$<base64 of the derived key>`,
/// the key as long as the digest, the salt used as its UTF-8 bytes.
fn verify_django_pbkdf2(digest: Pbkdf2Digest, rest: &str, password: &str) -> bool {
    let mut parts = rest.split('$');
    let (Some(iterations), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if !(1..=MAX_PBKDF2_ITERATIONS).contains(&iterations) || salt.is_empty() {
        return false;
    }
    let Ok(expected) = STANDARD.decode(expected) else {
        return false;
    };
    if expected.len() != digest.output_len() {
        return false;
    }
    let mut derived = vec![0u8; expected.len()];
    digest.derive(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut derived,
    );
    derived.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // These came from Django 5.2's `make_password` (with argon2-cffi 25.1 for the argon2 one),
    // e.g. `make_password('s3cret', hasher='pbkdf2_sha256')`, and were checked there with
    // `check_password`.
    const DJANGO_PBKDF2_SHA256: &str =
        "pbkdf2_sha256$1000000$kcdkOwkosYQWmWosH6MPvv$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=";
    const DJANGO_PBKDF2_SHA256_UNICODE: &str =
        "pbkdf2_sha256$1000000$I6dzRu9l78fSTrxOTyJmL8$NW2paNBEQ/NmmAvmFx8mQWUvfZ9SzwXENI3bk+kb1Vs=";
    const DJANGO_PBKDF2_SHA1: &str =
        "pbkdf2_sha1$1000000$jNhSFdr8mJsqMDRYzAWzoK$q0j9/YMzz1kFRe6OIZagMZB8qLY=";
    const DJANGO_PBKDF2_SHA1_UNICODE: &str =
        "pbkdf2_sha1$1000000$04cfQYnHe9jXjNTou59Gf4$ecNUUU/xqqi4YhvBpvT/EKkuPPQ=";
    const DJANGO_ARGON2ID: &str = "argon2$argon2id$v=19$m=102400,t=2,p=8$\
        ZzVzMHpKZFVGVTF1ZWRPS25RWFQ3Zw$fod9SMXOu7lPIwI+6RzNBtiB15LSlpWMGxkyERae00g";
    const UNICODE_PASSWORD: &str = "pässwörd €";

    // From Django's own test suite (tests/auth_tests/test_hashers.py), password "secret": an
    // argon2i hash without a version field, and one with it.
    const DJANGO_ARGON2I_NO_VERSION: &str = "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$\
        gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg";
    const DJANGO_ARGON2I_V19: &str =
        "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q";

    // PHC strings from argon2-cffi 25.1 (`argon2.low_level.hash_secret` and
    // `argon2.PasswordHasher().hash`), password "s3cret".
    const PHC_ARGON2I: &str = "$argon2i$v=19$m=1024,t=2,p=1$r8Pdz2/DqKcPhpKWz3pGqA$YGqsRDYGkGqDgSm91oH90jhdrY03/xPGXF/b4ZarD20";
    const PHC_ARGON2D: &str = "$argon2d$v=19$m=1024,t=2,p=1$lx9c0gF2Rul2eMxRONNLoA$0rPZGniT2zN+0fKmaJwCR6RorcNNiHKR2RKPTIUAm+0";
    const PHC_ARGON2ID: &str = "$argon2id$v=19$m=65536,t=3,p=4$E4q+WLQC6fcyghgI/GjW8A$tGrDdn+m06v4nkjG/raumDclK7RuICRo1anSedR2J6s";

    #[test]
    fn new_hashes_are_argon2id_phc_strings_that_verify() {
        let hash = hash_password("s3cret");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "s3cret "));
        assert!(!HashCost::default().needs_rehash(&hash));
    }

    #[test]
    fn same_password_gets_a_different_salt_each_time() {
        assert_ne!(hash_password("s3cret"), hash_password("s3cret"));
    }

    /// Made by Django 5.2's `make_password('s3cret', hasher=...)` (with the `bcrypt` package for
    /// the two bcrypt hashers), and checked there with `check_password`.
    const DJANGO_BCRYPT_SHA256: &str =
        "bcrypt_sha256$$2b$12$/YZJb.D6A2uVtHcrhwI48eEnFx2PczrpajNxxrx0H7PzVzTH2XOyW";
    const DJANGO_BCRYPT: &str =
        "bcrypt$$2b$12$0NkINFXkLytu1u2ScZx1nunT2fyaRl5WNJMplBLI8Zj1cBUQ.kEl6";
    const DJANGO_SCRYPT: &str = "scrypt$16384$Hh0eeg9TBOTpYZBr7V55nR$8$5$B12lsaVvsdy/PwmiB7ker//WM1bkVB2f1Hc0vAZB7THGBkjWqGmdmsGV5jtYOswLk4fioPMwT5onk88jB1Ql0g==";

    #[test]
    fn django_bcrypt_and_scrypt_hashes_verify_and_wrong_passwords_fail() {
        for stored in [DJANGO_BCRYPT_SHA256, DJANGO_BCRYPT, DJANGO_SCRYPT] {
            assert!(verify_password(stored, "s3cret"), "{stored}");
            assert!(!verify_password(stored, "s3cret "), "{stored}");
            assert!(!verify_password(stored, ""), "{stored}");
        }
        // The two bcrypt hashers are not interchangeable.
        let swapped = DJANGO_BCRYPT_SHA256.replace("bcrypt_sha256$", "bcrypt$");
        assert!(!verify_password(&swapped, "s3cret"));
    }

    #[test]
    fn bcrypt_and_scrypt_hashes_that_ask_too_much_or_are_malformed_never_verify() {
        for stored in [
            "bcrypt_sha256$$2b$31$/YZJb.D6A2uVtHcrhwI48eEnFx2PczrpajNxxrx0H7PzVzTH2XOyW",
            "bcrypt$$2b$xx$0NkINFXkLytu1u2ScZx1nunT2fyaRl5WNJMplBLI8Zj1cBUQ.kEl6",
            "bcrypt$",
            "scrypt$1048576$salt$64$16$B12lsaVvsdy/PwmiB7ker//WM1bkVB2f1Hc0vAZB7THGBkjWqGmdmsGV5jtYOswLk4fioPMwT5onk88jB1Ql0g==",
            "scrypt$16383$Hh0eeg9TBOTpYZBr7V55nR$8$5$B12lsaVvsdy/PwmiB7ker//WM1bkVB2f1Hc0vAZB7THGBkjWqGmdmsGV5jtYOswLk4fioPMwT5onk88jB1Ql0g==",
            "scrypt$16384$$8$5$B12lsaVvsdy/PwmiB7ker//WM1bkVB2f1Hc0vAZB7THGBkjWqGmdmsGV5jtYOswLk4fioPMwT5onk88jB1Ql0g==",
            "scrypt$16384$Hh0eeg9TBOTpYZBr7V55nR$8$5$not base64",
            "scrypt$16384$Hh0eeg9TBOTpYZBr7V55nR$8$5",
        ] {
            assert!(!verify_password(stored, "s3cret"), "{stored}");
        }
    }

    #[test]
    fn django_pbkdf2_sha256_verifies_and_wrong_password_fails() {
        assert!(verify_password(DJANGO_PBKDF2_SHA256, "s3cret"));
        assert!(!verify_password(DJANGO_PBKDF2_SHA256, "s3creT"));
        assert!(!verify_password(DJANGO_PBKDF2_SHA256, ""));
        assert!(verify_password(
            DJANGO_PBKDF2_SHA256_UNICODE,
            UNICODE_PASSWORD
        ));
        assert!(!verify_password(DJANGO_PBKDF2_SHA256_UNICODE, "passwort €"));
    }

    #[test]
    fn django_pbkdf2_sha1_verifies_and_wrong_password_fails() {
        assert!(verify_password(DJANGO_PBKDF2_SHA1, "s3cret"));
        assert!(!verify_password(DJANGO_PBKDF2_SHA1, "secret"));
        assert!(verify_password(
            DJANGO_PBKDF2_SHA1_UNICODE,
            UNICODE_PASSWORD
        ));
    }

    #[test]
    fn django_argon2_verifies_and_wrong_password_fails() {
        assert!(verify_password(DJANGO_ARGON2ID, "s3cret"));
        assert!(!verify_password(DJANGO_ARGON2ID, "s3cre"));
        assert!(verify_password(DJANGO_ARGON2I_NO_VERSION, "secret"));
        assert!(!verify_password(DJANGO_ARGON2I_NO_VERSION, "wrong"));
        assert!(verify_password(DJANGO_ARGON2I_V19, "secret"));
        assert!(!verify_password(DJANGO_ARGON2I_V19, "wrong"));
    }

    #[test]
    fn phc_argon2_variants_verify() {
        for hash in [PHC_ARGON2I, PHC_ARGON2D, PHC_ARGON2ID] {
            assert!(verify_password(hash, "s3cret"), "{hash}");
            assert!(!verify_password(hash, "S3cret"), "{hash}");
        }
    }

    #[test]
    fn everything_but_current_argon2id_needs_rehash() {
        for hash in [
            DJANGO_PBKDF2_SHA256,
            DJANGO_PBKDF2_SHA1,
            DJANGO_ARGON2ID,
            DJANGO_ARGON2I_V19,
            PHC_ARGON2I,
            PHC_ARGON2D,
            // argon2id, but with argon2-cffi's costs rather than ours.
            PHC_ARGON2ID,
            "garbage",
        ] {
            assert!(HashCost::default().needs_rehash(hash), "{hash}");
        }
        assert!(!HashCost::default().needs_rehash(&DUMMY_HASH));
    }

    #[test]
    fn a_configured_cost_hashes_with_it_and_rehashes_every_other_cost() {
        let cheap = HashCost {
            memory_kib: 64,
            passes: 1,
        };
        let hash = cheap.hash("s3cret");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "S3cret"));
        assert!(!cheap.needs_rehash(&hash));
        assert!(HashCost::default().needs_rehash(&hash));
        assert!(cheap.needs_rehash(&DUMMY_HASH));
    }

    #[test]
    fn impossible_costs_are_refused_with_advice() {
        let tiny = HashCost {
            memory_kib: 1,
            passes: 1,
        };
        assert!(tiny.params().unwrap_err().contains("at least 8 KiB"));
        let zero_passes = HashCost {
            memory_kib: 64,
            passes: 0,
        };
        assert!(zero_passes.params().is_err());
        let huge = HashCost {
            memory_kib: MAX_ARGON2_MEMORY_KIB + 1,
            passes: 1,
        };
        assert!(huge.params().unwrap_err().contains("too high"));
    }

    #[test]
    fn dummy_hash_is_argon2id_and_matches_no_ordinary_password() {
        assert!(DUMMY_HASH.starts_with("$argon2id$"));
        assert!(!verify_password(&DUMMY_HASH, ""));
        assert!(!verify_password(&DUMMY_HASH, "s3cret"));
    }

    #[test]
    fn unknown_and_malformed_hashes_never_verify() {
        let cases = [
            "",
            "!",
            // Django's unusable password marker.
            "!3NQJvl3T0sSDYxevL0Vk4MDczHVecUgOhB3RvHKH",
            "bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuu5NhzzRO1WQzTm2y8gVQbZ6vZdpQs4xK",
            "md5$salt$0d107d09f5bbe40cade3de5c71e9e9b7",
            "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NY",
            "s3cret",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$not base64!",
            "$argon2id$v=99$m=19456,t=2,p=1$c29tZXNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            "$argon2id$v=19$m=1,t=0,p=0$c29tZXNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            "$argon2x$v=19$m=8,t=1,p=1$c29tZXNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            "argon2$",
            "argon2$garbage",
            "pbkdf2_sha256$",
            "pbkdf2_sha256$1000000$salt",
            "pbkdf2_sha256$0$salt$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=",
            "pbkdf2_sha256$-1$salt$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=",
            "pbkdf2_sha256$4294967295$salt$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=",
            "pbkdf2_sha256$lots$salt$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=",
            "pbkdf2_sha256$1000$salt$not base64",
            "pbkdf2_sha256$1000$salt$c2hvcnQ=",
            "pbkdf2_sha256$1000$$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=",
            "pbkdf2_sha256$1000$salt$EeISqBdDB2nu+VQbbIQFENF6UyYOJw/K6B+c1bnHdtc=$extra",
            "pbkdf2_sha1$1000$salt$",
        ];
        for stored in cases {
            assert!(!verify_password(stored, "s3cret"), "{stored}");
            assert!(!verify_password(stored, ""), "{stored}");
        }
    }
}
