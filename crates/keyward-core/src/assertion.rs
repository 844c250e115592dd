//! Registered public keys and JWT assertions signed with them (RFC 7523): the
//! `private_key_jwt` client authentication method and the JWT-bearer grant.
//!
//! A client registers one or more public keys ([`PublicKey::parse`],
//! [`PublicKey::parse_many`]) as PEM or JWK; they are stored as canonical public JWKs
//! ([`PublicKey::to_stored`]). At the token endpoint, [`peek`] reads the unverified
//! `iss`/`sub` and header `kid` so the caller can find whose keys to load, and
//! [`verify`] checks the signature and every claim that does not need the database.
//! Single use of `jti` (until `exp`) and `iss == sub` for client assertions are the
//! caller's business, because only it knows which kind of assertion it is reading and
//! where seen `jti`s are kept.
//!
//! # What is keyward's, and what is the crates'
//!
//! This module holds keyward's *policy* only:
//!
//! - which keys may be registered: RSA of 2048 to 8192 bits (RS256), P-256 (ES256) and
//!   Ed25519 (EdDSA); never a private key, a certificate, a symmetric key, another curve,
//!   or a JWK whose `alg`, `use` or `key_ops` contradicts that;
//! - which algorithms a token may use: the registered key's, under its JOSE name or, for
//!   Ed25519, its RFC 9864 name `Ed25519`. `none` and HMAC are refused before any key is
//!   looked at: an HMAC "key" would be a secret the server shares, which defeats the point
//!   of a key pair, and accepting HS256 next to RS256 is the classic algorithm-confusion
//!   hole (the public key used as the HMAC secret). Header members that point at keys
//!   (`jwk`, `jku`, `x5u`, `x5c`) are ignored: keys come from registration only;
//! - which claims are required and how far ahead `exp` may lie ([`Rules`]).
//!
//! Everything that reads bytes is a well-kept crate's: PEM text by `pem`, DER (SPKI and
//! PKCS#1) by `spki` and `pkcs1`, key validity by `rsa`, `p256` and `ed25519-dalek`,
//! RFC 7638 thumbprints, JWKs and signatures by `jsonwebtoken` (its RustCrypto backend),
//! base64url by `base64`, JSON by `serde_json` into typed structures. The JWS header and
//! claims are read here with serde rather than through `jsonwebtoken::decode`, for two
//! reasons: its `Header` type cannot read the RFC 9864 name `Ed25519` (openid-client sends
//! it), and its claim validation reads the system clock, where [`Rules::now`] is an input
//! so that the time rules can be tested exactly.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType, Jwk,
    OctetKeyPairParameters, OctetKeyPairType, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use p256::elliptic_curve::sec1::ToSec1Point as _;
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::Invalid;

/// Longest accepted key input (PEM, JWK or JWKS text), checked before parsing.
pub const MAX_KEY_TEXT: usize = 16 * 1024;
/// Longest accepted assertion, checked before parsing. An RS256 assertion with a 4096-bit
/// key and ordinary claims is well under 2 KiB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest accepted `jti`, in characters.
pub const MAX_JTI_CHARS: usize = 256;
/// Longest accepted key id, in characters.
pub const MAX_KID_CHARS: usize = 256;
/// Most keys in one JWKS document.
pub const MAX_KEYS: usize = 50;
/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits (the `rsa` crate's own limit).
pub const MAX_RSA_BITS: usize = 8192;

/// Algorithms a registered key may sign with. `none` and HMAC are never accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048 bits or more.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519 (JOSE `EdDSA`, or `Ed25519` as RFC 9864 names it).
    EdDsa,
}

impl KeyAlg {
    pub const ALL: [KeyAlg; 3] = [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa];

    /// Every `alg` value accepted in a token header: each algorithm's JOSE name, and the
    /// fully-specified name RFC 9864 gives Ed25519. For the metadata document.
    pub const HEADER_NAMES: [&'static str; 4] = ["RS256", "ES256", "EdDSA", "Ed25519"];

    /// The JOSE name, as in a JWT header's `alg`; what is stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
            KeyAlg::EdDsa => "EdDSA",
        }
    }

    /// A header's or a JWK's `alg`, exactly (JOSE names are case-sensitive). RFC 9864's
    /// `Ed25519` is Ed25519 signing under its fully-specified name: the same as `EdDSA`
    /// for the only Edwards curve accepted here.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Ed25519" => Some(KeyAlg::EdDsa),
            _ => Self::ALL.into_iter().find(|a| a.as_str() == s),
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            KeyAlg::Rs256 => Algorithm::RS256,
            KeyAlg::Es256 => Algorithm::ES256,
            KeyAlg::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public numbers of a key that its crate accepted, as canonical base64url (no
/// padding, no leading zero octets in RSA integers, full-length coordinates), so that
/// equal keys compare equal and the RFC 7638 thumbprint is well defined.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    Rsa { n: String, e: String },
    Ec { x: String, y: String },
    Ed { x: String },
}

impl Material {
    fn alg(&self) -> KeyAlg {
        match self {
            Material::Rsa { .. } => KeyAlg::Rs256,
            Material::Ec { .. } => KeyAlg::Es256,
            Material::Ed { .. } => KeyAlg::EdDsa,
        }
    }

    fn kty(&self) -> &'static str {
        match self {
            Material::Rsa { .. } => "RSA",
            Material::Ec { .. } => "EC",
            Material::Ed { .. } => "OKP",
        }
    }

    fn jwk(&self) -> Jwk {
        let algorithm = match self {
            Material::Rsa { n, e } => {
                AlgorithmParameters::RSA(RSAKeyParameters { key_type: RSAKeyType::RSA, n: n.clone(), e: e.clone() })
            }
            Material::Ec { x, y } => AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: x.clone(),
                y: y.clone(),
            }),
            Material::Ed { x } => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: x.clone(),
            }),
        };
        Jwk { common: CommonParameters::default(), algorithm }
    }

    /// The key `jsonwebtoken` verifies signatures with.
    fn decoding_key(&self) -> Option<DecodingKey> {
        DecodingKey::from_jwk(&self.jwk()).ok()
    }

    /// RFC 7638 thumbprint: base64url SHA-256 of the required members in lexical order.
    fn thumbprint(&self) -> Result<String, Invalid> {
        self.jwk().thumbprint(ThumbprintHash::SHA256).map_err(|_| Invalid("cannot compute the key's thumbprint".into()))
    }

    /// An RSA key from its big-endian modulus and exponent, checked by the `rsa` crate
    /// (odd modulus, exponent in range and odd) within keyward's size rule.
    fn rsa(n: &[u8], e: &[u8]) -> Result<Self, Invalid> {
        let n = rsa::BoxedUint::from_be_slice_vartime(n);
        let e = rsa::BoxedUint::from_be_slice_vartime(e);
        let bits = n.bit_width_vartime() as usize;
        let key = rsa::PublicKey::new_with_size_limits(n, e, MIN_RSA_BITS..=MAX_RSA_BITS).map_err(|err| match err {
            rsa::Error::ModulusTooSmall => {
                Invalid(format!("this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"))
            }
            rsa::Error::ModulusTooLarge => {
                Invalid(format!("this RSA key has {bits} bits; at most {MAX_RSA_BITS} are accepted"))
            }
            _ => Invalid("not a valid RSA public key".into()),
        })?;
        Ok(Material::Rsa { n: URL_SAFE_NO_PAD.encode(key.n_bytes()), e: URL_SAFE_NO_PAD.encode(key.e_bytes()) })
    }

    /// A P-256 key the `p256` crate accepted (a point on the curve, not the identity).
    fn p256(key: &p256::PublicKey) -> Self {
        let point = key.to_uncompressed_point();
        // 0x04 || x || y, each coordinate 32 bytes.
        Material::Ec { x: URL_SAFE_NO_PAD.encode(&point[1..33]), y: URL_SAFE_NO_PAD.encode(&point[33..65]) }
    }

    /// A P-256 key from JWK coordinates.
    fn ec(x: &[u8], y: &[u8]) -> Result<Self, Invalid> {
        if x.len() != 32 || y.len() != 32 {
            return Err(Invalid("not a valid P-256 public key: x and y must be 32 bytes".into()));
        }
        let sec1 = [&[0x04][..], x, y].concat();
        let key = p256::PublicKey::from_sec1_bytes(&sec1)
            .map_err(|_| Invalid("not a valid P-256 public key: the point is not on the curve".into()))?;
        Ok(Self::p256(&key))
    }

    /// An Ed25519 key the `ed25519-dalek` crate accepted (a valid point encoding).
    fn ed25519(key: &ed25519_dalek::VerifyingKey) -> Self {
        Material::Ed { x: URL_SAFE_NO_PAD.encode(key.as_bytes()) }
    }

    /// An Ed25519 key from a JWK's `x`.
    fn ed(x: &[u8]) -> Result<Self, Invalid> {
        let bad = || Invalid("not a valid Ed25519 public key".into());
        let bytes: &[u8; 32] =
            x.try_into().map_err(|_| Invalid("not a valid Ed25519 public key: x must be 32 bytes".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| bad())?;
        Ok(Self::ed25519(&key))
    }
}

/// A registered public key: its algorithm, key id, and a canonical stored form.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    material: Material,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("alg", &self.alg()).field("kid", &self.kid).finish()
    }
}

/// The canonical JWK members, in a fixed order so that [`PublicKey::to_stored`] is
/// byte-for-byte deterministic whatever `serde_json` features the build enables.
#[derive(serde::Serialize)]
struct JwkOut<'a> {
    kty: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<&'a str>,
    kid: &'a str,
    alg: &'a str,
}

impl PublicKey {
    /// Parses one public key from PEM (SPKI `-----BEGIN PUBLIC KEY-----`, or PKCS#1
    /// `-----BEGIN RSA PUBLIC KEY-----`) or a JWK JSON object.
    ///
    /// RSA keys sign with RS256 (2048 to 8192 bits), P-256 EC keys with ES256, Ed25519
    /// (OKP) keys with EdDSA; other curves and key types are refused, as are private keys,
    /// symmetric (`oct`) JWKs, certificates, and a JWK whose `alg` or `use` contradicts
    /// the above. The key id is `kid` if given, else the JWK's `kid`, else the RFC 7638
    /// thumbprint, so every key has one.
    pub fn parse(text: &str, kid: Option<&str>) -> Result<PublicKey, Invalid> {
        check_size(text)?;
        let text = text.trim();
        let (material, own_kid) = if text.starts_with('{') {
            let obj = json_object(text)?;
            if obj.contains_key("keys") {
                return Err(Invalid("this is a key set (JWKS); expected a single key".into()));
            }
            parse_jwk(&obj)?
        } else if text.contains("-----BEGIN") {
            (parse_pem(text)?, None)
        } else {
            return Err(Invalid("expected a PEM public key (-----BEGIN PUBLIC KEY-----) or a JWK JSON object".into()));
        };
        let kid = match kid.map(str::to_owned).or(own_kid) {
            Some(kid) => {
                check_kid(&kid)?;
                kid
            }
            None => material.thumbprint()?,
        };
        Ok(PublicKey { kid, material })
    }

    /// A JWKS document `{"keys":[...]}`, or a single key (PEM or JWK), into one or more
    /// keys. Key ids must be distinct within the set.
    pub fn parse_many(text: &str) -> Result<Vec<PublicKey>, Invalid> {
        check_size(text)?;
        let trimmed = text.trim();
        if !trimmed.starts_with('{') {
            return Ok(vec![Self::parse(text, None)?]);
        }
        let obj = json_object(trimmed)?;
        let Some(keys) = obj.get("keys") else {
            return Ok(vec![Self::parse(text, None)?]);
        };
        let Value::Array(keys) = keys else {
            return Err(Invalid("the key set's \"keys\" must be an array".into()));
        };
        if keys.is_empty() {
            return Err(Invalid("the key set has no keys".into()));
        }
        if keys.len() > MAX_KEYS {
            return Err(Invalid(format!("a key set has at most {MAX_KEYS} keys")));
        }
        let mut out: Vec<PublicKey> = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let at = |e: Invalid| Invalid(format!("key {}: {}", i + 1, e.0));
            let Value::Object(obj) = key else {
                return Err(at(Invalid("not a JSON object".into())));
            };
            let (material, kid) = parse_jwk(obj).map_err(at)?;
            let kid = match kid {
                Some(kid) => {
                    check_kid(&kid).map_err(at)?;
                    kid
                }
                None => material.thumbprint().map_err(at)?,
            };
            if out.iter().any(|k| k.kid == kid) {
                return Err(at(Invalid("another key in the set has the same kid".into())));
            }
            out.push(PublicKey { kid, material });
        }
        Ok(out)
    }

    pub fn alg(&self) -> KeyAlg {
        self.material.alg()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Canonical public JWK JSON text (kty, the public members, kid, alg): what the
    /// database stores.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.out()).expect("a JWK of strings always serializes")
    }

    /// Reads back what [`to_stored`](Self::to_stored) wrote. The `kid` must be there: a
    /// stored key never gets a new id by accident.
    pub fn from_stored(stored: &str) -> Result<PublicKey, Invalid> {
        let corrupt = |e: Invalid| Invalid(format!("stored public key is unreadable: {}", e.0));
        check_size(stored).map_err(corrupt)?;
        let obj = json_object(stored.trim()).map_err(corrupt)?;
        if !obj.contains_key("alg") {
            return Err(corrupt(Invalid("no alg".into())));
        }
        let (material, kid) = parse_jwk(&obj).map_err(corrupt)?;
        let kid = kid.ok_or_else(|| corrupt(Invalid("no kid".into())))?;
        Ok(PublicKey { kid, material })
    }

    /// The public JWK as JSON, for listing over the API.
    pub fn to_jwk_value(&self) -> Value {
        serde_json::to_value(self.out()).expect("a JWK of strings always serializes")
    }

    fn out(&self) -> JwkOut<'_> {
        let mut out = JwkOut {
            kty: self.material.kty(),
            crv: None,
            n: None,
            e: None,
            x: None,
            y: None,
            kid: &self.kid,
            alg: self.alg().as_str(),
        };
        match &self.material {
            Material::Rsa { n, e } => {
                out.n = Some(n);
                out.e = Some(e);
            }
            Material::Ec { x, y } => {
                out.crv = Some("P-256");
                out.x = Some(x);
                out.y = Some(y);
            }
            Material::Ed { x } => {
                out.crv = Some("Ed25519");
                out.x = Some(x);
            }
        }
        out
    }
}

fn check_size(text: &str) -> Result<(), Invalid> {
    if text.len() > MAX_KEY_TEXT {
        return Err(Invalid(format!("key text is at most {} KiB", MAX_KEY_TEXT / 1024)));
    }
    Ok(())
}

fn check_kid(kid: &str) -> Result<(), Invalid> {
    let chars = kid.chars().count();
    if chars == 0 || chars > MAX_KID_CHARS || kid.chars().any(char::is_control) {
        return Err(Invalid(format!("a key id is 1-{MAX_KID_CHARS} characters without control characters")));
    }
    Ok(())
}

fn json_object(text: &str) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(Invalid("expected a JSON object".into())),
        Err(_) => Err(Invalid("not valid JSON".into())),
    }
}

/// A short, printable rendition of a value taken from input, for error messages.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(32).collect();
    if s.chars().count() > 32 {
        out.push('…');
    }
    format!("{out:?}")
}

/// Parses one JWK object into key material and its own `kid`, if any.
fn parse_jwk(obj: &Map<String, Value>) -> Result<(Material, Option<String>), Invalid> {
    let kty = match obj.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return Err(Invalid("the JWK's kty must be a string".into())),
        None => return Err(Invalid("the JWK has no kty".into())),
    };
    if kty == "oct" {
        return Err(Invalid("symmetric (kty \"oct\") keys are not accepted: register a public key".into()));
    }
    // Refusing rather than dropping the private members: whoever pasted this has exposed
    // the private key, and should know it before it is used anywhere.
    if let Some(member) = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"].into_iter().find(|m| obj.contains_key(*m)) {
        return Err(Invalid(format!(
            "this JWK contains private key material ({member:?}): register the public key only"
        )));
    }
    let material = match kty {
        "RSA" => Material::rsa(&b64_member(obj, "n")?, &b64_member(obj, "e")?)?,
        "EC" => {
            match str_member(obj, "crv")? {
                Some("P-256") => {}
                Some(crv) => return Err(Invalid(format!("EC curve {} is not accepted: use P-256", shown(crv)))),
                None => return Err(Invalid("the EC JWK has no crv".into())),
            }
            Material::ec(&b64_member(obj, "x")?, &b64_member(obj, "y")?)?
        }
        "OKP" => {
            match str_member(obj, "crv")? {
                Some("Ed25519") => {}
                Some(crv) => return Err(Invalid(format!("OKP curve {} is not accepted: use Ed25519", shown(crv)))),
                None => return Err(Invalid("the OKP JWK has no crv".into())),
            }
            Material::ed(&b64_member(obj, "x")?)?
        }
        other => {
            return Err(Invalid(format!(
                "key type {} is not accepted: use RSA, EC (P-256) or OKP (Ed25519)",
                shown(other)
            )))
        }
    };
    if let Some(alg) = str_member(obj, "alg")? {
        if KeyAlg::parse(alg) != Some(material.alg()) {
            return Err(Invalid(format!(
                "the JWK's alg {} does not fit the key: {} keys sign with {} here",
                shown(alg),
                kty,
                material.alg()
            )));
        }
    }
    if let Some(usage) = str_member(obj, "use")? {
        if usage != "sig" {
            return Err(Invalid(format!(
                "the JWK's use is {}; a key for assertions must be a signature key (\"sig\")",
                shown(usage)
            )));
        }
    }
    if let Some(ops) = obj.get("key_ops") {
        let verifies = matches!(ops, Value::Array(ops) if ops.iter().any(|o| o == "verify"));
        if !verifies {
            return Err(Invalid("the JWK's key_ops does not include \"verify\"".into()));
        }
    }
    let kid = str_member(obj, "kid")?.map(str::to_owned);
    if let Some(kid) = &kid {
        check_kid(kid)?;
    }
    Ok((material, kid))
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Invalid> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid(format!("the JWK's {name} must be a string"))),
    }
}

/// A required base64url member. Padding is tolerated on input (some tools emit it); the
/// stored form never has it.
fn b64_member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Invalid> {
    let s = str_member(obj, name)?.ok_or_else(|| Invalid(format!("the JWK has no {name}")))?;
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| Invalid(format!("the JWK's {name} is not base64url")))
}

fn unsupported() -> Invalid {
    Invalid("unsupported public key: use RSA (2048 bits or more), EC P-256 or Ed25519".into())
}

/// One PEM block, read by the `pem` crate, its DER handed to the key crates.
fn parse_pem(text: &str) -> Result<Material, Invalid> {
    if text.contains("PRIVATE KEY") {
        return Err(Invalid(
            "this is a private key: register the public key (-----BEGIN PUBLIC KEY-----) and keep the private key with the client"
                .into(),
        ));
    }
    if text.contains("CERTIFICATE") {
        return Err(Invalid(
            "certificates are not accepted: register the public key (-----BEGIN PUBLIC KEY-----)".into(),
        ));
    }
    if text.matches("-----BEGIN ").count() != 1 {
        return Err(Invalid("expected exactly one PEM block".into()));
    }
    let block = pem::parse(text).map_err(|_| Invalid("malformed PEM".into()))?;
    match block.tag() {
        "PUBLIC KEY" => parse_spki(block.contents()),
        "RSA PUBLIC KEY" => parse_pkcs1(block.contents()),
        label => Err(Invalid(format!("unsupported PEM block {}: expected PUBLIC KEY or RSA PUBLIC KEY", shown(label)))),
    }
}

/// A SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), by its algorithm.
fn parse_spki(der: &[u8]) -> Result<Material, Invalid> {
    let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|_| unsupported())?;
    let oid = info.algorithm.oid;
    if oid == pkcs1::ALGORITHM_OID {
        // rsaEncryption's parameters are NULL, which some encoders leave out.
        if info.algorithm.parameters.is_some_and(|p| !p.is_null()) {
            return Err(unsupported());
        }
        return parse_pkcs1(info.subject_public_key.as_bytes().ok_or_else(unsupported)?);
    }
    if oid == p256::elliptic_curve::ALGORITHM_OID {
        return p256::PublicKey::try_from(info)
            .map(|key| Material::p256(&key))
            .map_err(|_| Invalid("this EC key is not a valid P-256 key (another curve?): use P-256".into()));
    }
    if oid == ed25519_dalek::pkcs8::ALGORITHM_OID {
        return ed25519_dalek::VerifyingKey::from_public_key_der(der)
            .map(|key| Material::ed25519(&key))
            .map_err(|_| Invalid("not a valid Ed25519 public key".into()));
    }
    Err(unsupported())
}

/// A PKCS#1 RSAPublicKey (RFC 8017 A.1.1).
fn parse_pkcs1(der: &[u8]) -> Result<Material, Invalid> {
    let key = pkcs1::RsaPublicKeyRef::try_from(der).map_err(|_| Invalid("not a valid RSA public key".into()))?;
    Material::rsa(key.modulus.as_bytes(), key.public_exponent.as_bytes())
}

/// Why an assertion was refused. Messages are safe to show the client: they never
/// repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("the assertion is too long")]
    TooLong,
    #[error("the assertion is not a well-formed signed JWT")]
    Malformed,
    /// The header's `alg`, if short and alphanumeric; else `"(unrecognized)"`.
    #[error("the {0} signing algorithm is not accepted; use RS256, ES256 or EdDSA (Ed25519)")]
    AlgorithmRefused(String),
    #[error("no registered key matches the assertion")]
    UnknownKey,
    #[error("the assertion's algorithm does not match the registered key")]
    KeyMismatch,
    #[error("the assertion's signature is invalid")]
    BadSignature,
    #[error("the assertion has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the assertion's audience is not this server")]
    WrongAudience,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion expires too far in the future")]
    TooFarAhead,
    #[error("the assertion is not valid yet")]
    NotYetValid,
}

/// Claims read from an assertion *before* its signature is checked, only to find which
/// client's keys to check it with. Nothing here may be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub alg: String,
    pub kid: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
}

/// What [`verify`] checks the claims against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Accepted `aud` values (the issuer, the token endpoint URL, the URL of the endpoint
    /// being called). `aud` may be a string or an array; one match suffices.
    pub audiences: &'a [&'a str],
    /// Now, Unix seconds (passed in, so tests control the clock).
    pub now: i64,
    /// Longest allowed `exp - now`, seconds. It bounds how long a seen `jti` must be
    /// remembered; client libraries default to one hour (authlib), so 3600 is the norm.
    pub max_ahead: i64,
    /// Clock-skew leeway, seconds (e.g. 30): forgiven for an `exp` just past, for `nbf`
    /// and `iat` a little in the future, and beyond `max_ahead` (a client whose clock runs
    /// a little fast and sets `exp` = its now + one hour).
    pub leeway: i64,
}

/// A verified assertion: signature good, audience and times acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub iss: String,
    pub sub: String,
    pub jti: String,
    /// Unix seconds; the caller must remember `jti` until then.
    pub exp: i64,
    /// Which registered key the signature was checked with.
    pub kid: String,
    pub scope: Option<String>,
}

/// The JOSE header members this module reads (RFC 7515 §4.1). Any other member is
/// ignored, except `crit`: see [`Parts::split`].
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// The registered claims read here (RFC 7519 §4.1), typed: a claim of the wrong JSON
/// type makes the token malformed. Presence is checked by [`verify`].
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional, truncated toward zero; an
/// absurd value saturates (so an `exp` of 1e300 fails `max_ahead`, not the parser).
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        match n.as_i64() {
            Some(i) => Ok(NumericDate(i)),
            None => n.as_f64().map(|f| NumericDate(f as i64)).ok_or_else(|| serde::de::Error::custom("not a number")),
        }
    }
}

/// The three parts of a compact JWS, the header decoded.
struct Parts<'t> {
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    header: JoseHeader,
}

impl<'t> Parts<'t> {
    fn split(token: &'t str) -> Result<Self, AssertionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AssertionError::TooLong);
        }
        // Exactly three parts: five would be a JWE, which a client assertion is not.
        let mut it = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(AssertionError::Malformed);
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header: JoseHeader = decode_json(header)?;
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; none are.
        if header.crit.is_some() {
            return Err(AssertionError::Malformed);
        }
        Ok(Parts { signing_input, payload, signature, header })
    }

    fn claims(&self) -> Result<Claims, AssertionError> {
        decode_json(self.payload)
    }
}

/// A base64url (strict: no padding, no stray trailing bits) JSON object of type `T`.
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AssertionError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AssertionError::Malformed)?;
    // Through a map first: serde would read a struct from a JSON array too.
    let object: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed)?;
    serde_json::from_value(Value::Object(object)).map_err(|_| AssertionError::Malformed)
}

/// Reads `alg`, `kid`, `iss` and `sub` without checking anything else, only to choose
/// whose keys to verify with.
pub fn peek(token: &str) -> Result<Unverified, AssertionError> {
    let parts = Parts::split(token)?;
    let claims = parts.claims()?;
    Ok(Unverified { iss: claims.iss, sub: claims.sub, alg: parts.header.alg, kid: parts.header.kid })
}

/// The refused algorithm's name for [`AssertionError::AlgorithmRefused`]: it comes from
/// the token, so only a short plain name is kept.
fn refused(alg: &str) -> AssertionError {
    let plain = (1..=16).contains(&alg.len()) && alg.bytes().all(|b| b.is_ascii_alphanumeric());
    AssertionError::AlgorithmRefused(if plain { alg.to_owned() } else { "(unrecognized)".into() })
}

/// Verifies `token` against a client's registered `keys`.
///
/// The header `alg` must be RS256, ES256 or EdDSA (or `Ed25519`); the key is the one named
/// by the header `kid` (whose algorithm must equal `alg`) or, without a `kid`, any key of
/// that algorithm. Then: `iss`, `sub`, `aud` (one of `rules.audiences`), `exp` (not past,
/// not beyond `max_ahead`), `nbf` and `iat` (not in the future) and `jti` (1–256
/// characters). `iss == sub` and the single use of `jti` are left to the caller.
pub fn verify(token: &str, keys: &[PublicKey], rules: &Rules) -> Result<Verified, AssertionError> {
    let parts = Parts::split(token)?;
    let alg = KeyAlg::parse(&parts.header.alg).ok_or_else(|| refused(&parts.header.alg))?;
    let candidates: Vec<&PublicKey> = match &parts.header.kid {
        Some(kid) => {
            let key = keys.iter().find(|k| &k.kid == kid).ok_or(AssertionError::UnknownKey)?;
            if key.alg() != alg {
                return Err(AssertionError::KeyMismatch);
            }
            vec![key]
        }
        None => {
            if keys.is_empty() {
                return Err(AssertionError::UnknownKey);
            }
            let same_alg: Vec<&PublicKey> = keys.iter().filter(|k| k.alg() == alg).collect();
            if same_alg.is_empty() {
                return Err(AssertionError::KeyMismatch);
            }
            same_alg
        }
    };
    // Decoded here, strictly, so that two spellings of one signature cannot both pass
    // (jsonwebtoken's own decoding would forgive stray trailing bits).
    let signature = URL_SAFE_NO_PAD.decode(parts.signature).map_err(|_| AssertionError::Malformed)?;
    if signature.is_empty() {
        return Err(AssertionError::Malformed);
    }
    let key = candidates
        .into_iter()
        .find(|key| {
            key.material.decoding_key().is_some_and(|dk| {
                jsonwebtoken::crypto::verify(parts.signature, parts.signing_input.as_bytes(), &dk, alg.jwt())
                    .unwrap_or(false)
            })
        })
        .ok_or(AssertionError::BadSignature)?;

    // Only now is the payload worth reading.
    let claims = parts.claims()?;
    let non_empty = |value: Option<String>, name: &'static str| -> Result<String, AssertionError> {
        value.filter(|s| !s.is_empty()).ok_or(AssertionError::MissingClaim(name))
    };
    let iss = non_empty(claims.iss, "iss")?;
    let sub = non_empty(claims.sub, "sub")?;

    let audience_ok = match claims.aud.ok_or(AssertionError::MissingClaim("aud"))? {
        Audience::One(aud) => rules.audiences.contains(&aud.as_str()),
        Audience::Many(auds) => auds.iter().any(|aud| rules.audiences.contains(&aud.as_str())),
    };
    if !audience_ok {
        return Err(AssertionError::WrongAudience);
    }

    let leeway = rules.leeway.max(0);
    let exp = claims.exp.ok_or(AssertionError::MissingClaim("exp"))?.0;
    if exp <= rules.now.saturating_sub(leeway) {
        return Err(AssertionError::Expired);
    }
    if exp > rules.now.saturating_add(rules.max_ahead).saturating_add(leeway) {
        return Err(AssertionError::TooFarAhead);
    }
    for t in [claims.nbf, claims.iat].into_iter().flatten() {
        if t.0 > rules.now.saturating_add(leeway) {
            return Err(AssertionError::NotYetValid);
        }
    }

    let jti = non_empty(claims.jti, "jti")?;
    if jti.chars().count() > MAX_JTI_CHARS {
        return Err(AssertionError::Malformed);
    }
    Ok(Verified { iss, sub, jti, exp, kid: key.kid.clone(), scope: claims.scope })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const TOKEN_URL: &str = "https://kw.example/oauth/token";
    const AUDS: [&str; 2] = [TOKEN_URL, "https://kw.example"];

    /// RFC 7638 §3.1's example key.
    const RFC7638_JWK: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;

    fn testdata(name: &str) -> String {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn rules() -> Rules<'static> {
        Rules { audiences: &AUDS, now: NOW, max_ahead: 3600, leeway: 30 }
    }

    fn claims() -> Value {
        json!({
            "iss": "cl_1", "sub": "cl_1", "aud": TOKEN_URL,
            "exp": NOW + 120, "iat": NOW, "jti": "jti-1",
        })
    }

    /// (private PEM file, public PEM file, algorithm) of each fixture pair.
    fn pairs() -> [(&'static str, &'static str, KeyAlg); 3] {
        [
            ("rsa_private.pem", "rsa_public.pem", KeyAlg::Rs256),
            ("ec_private.pem", "ec_public.pem", KeyAlg::Es256),
            ("ed25519_private.pem", "ed25519_public.pem", KeyAlg::EdDsa),
        ]
    }

    fn encoding_key(private: &str, alg: KeyAlg) -> EncodingKey {
        let pem = testdata(private);
        match alg {
            KeyAlg::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            KeyAlg::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            KeyAlg::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .unwrap()
    }

    fn sign(private: &str, alg: KeyAlg, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg.jwt());
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &encoding_key(private, alg)).unwrap()
    }

    fn public(file: &str, kid: &str) -> PublicKey {
        PublicKey::parse(&testdata(file), Some(kid)).unwrap()
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn ed_token(claims: &Value) -> (String, Vec<PublicKey>) {
        let token = sign("ed25519_private.pem", KeyAlg::EdDsa, Some("ed"), claims);
        (token, vec![public("ed25519_public.pem", "ed")])
    }

    #[test]
    fn key_alg_names() {
        for alg in KeyAlg::ALL {
            assert_eq!(KeyAlg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(KeyAlg::Rs256.as_str(), "RS256");
        assert_eq!(KeyAlg::Es256.as_str(), "ES256");
        assert_eq!(KeyAlg::EdDsa.as_str(), "EdDSA");
        // RFC 9864's fully-specified name for Ed25519 signing.
        assert_eq!(KeyAlg::parse("Ed25519"), Some(KeyAlg::EdDsa));
        for name in KeyAlg::HEADER_NAMES {
            assert!(KeyAlg::parse(name).is_some(), "{name}");
        }
        for other in ["none", "HS256", "rs256", "PS256", "ES384", "eddsa", "ed25519", "Ed448", ""] {
            assert_eq!(KeyAlg::parse(other), None, "{other}");
        }
    }

    #[test]
    fn each_algorithm_signs_and_verifies() {
        for (private, public_file, alg) in pairs() {
            let key = public(public_file, "k1");
            assert_eq!(key.alg(), alg);
            let mut c = claims();
            c["scope"] = json!("read write");
            let token = sign(private, alg, Some("k1"), &c);
            let v = verify(&token, std::slice::from_ref(&key), &rules()).unwrap();
            assert_eq!(
                v,
                Verified {
                    iss: "cl_1".into(),
                    sub: "cl_1".into(),
                    jti: "jti-1".into(),
                    exp: NOW + 120,
                    kid: "k1".into(),
                    scope: Some("read write".into()),
                },
                "{alg}"
            );
            // Without a kid in the header, every key of the algorithm is tried.
            let token = sign(private, alg, None, &claims());
            let other = PublicKey::parse(RFC7638_JWK, None).unwrap();
            let keys = [other, key.clone()];
            assert_eq!(verify(&token, &keys, &rules()).unwrap().kid, "k1", "{alg}");
        }
    }

    /// openid-client signs Ed25519 assertions with RFC 9864's `alg: "Ed25519"`.
    #[test]
    fn the_rfc_9864_name_ed25519_is_eddsa() {
        let header = |alg: &str, kid: &str| b64(&json!({"alg": alg, "kid": kid, "typ": "JWT"}));
        let signed = |header: String, claims: &Value, private: &str, alg: KeyAlg| {
            let input = format!("{header}.{}", b64(claims));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &encoding_key(private, alg), alg.jwt()).unwrap();
            format!("{input}.{sig}")
        };
        let ed = public("ed25519_public.pem", "ed");
        let token = signed(header("Ed25519", "ed"), &claims(), "ed25519_private.pem", KeyAlg::EdDsa);
        assert_eq!(peek(&token).unwrap().alg, "Ed25519");
        assert_eq!(verify(&token, std::slice::from_ref(&ed), &rules()).unwrap().kid, "ed");
        // Without a kid, the Ed25519 keys are tried.
        let bare = {
            let input = format!("{}.{}", b64(&json!({"alg": "Ed25519"})), b64(&claims()));
            let sig = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &encoding_key("ed25519_private.pem", KeyAlg::EdDsa),
                Algorithm::EdDSA,
            )
            .unwrap();
            format!("{input}.{sig}")
        };
        let ec = public("ec_public.pem", "ec");
        assert_eq!(verify(&bare, &[ec.clone(), ed.clone()], &rules()).unwrap().kid, "ed");
        // The name does not stretch to another key type.
        let on_ec = signed(header("Ed25519", "ec"), &claims(), "ed25519_private.pem", KeyAlg::EdDsa);
        assert_eq!(verify(&on_ec, &[ec.clone(), ed.clone()], &rules()), Err(AssertionError::KeyMismatch));
        assert_eq!(verify(&bare, std::slice::from_ref(&ec), &rules()), Err(AssertionError::KeyMismatch));
        // Another key's signature under the name is still a bad signature.
        let other = PublicKey::parse(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"}"#,
            None,
        )
        .unwrap();
        assert_eq!(verify(&token, &[other], &rules()), Err(AssertionError::BadSignature));
        // A JWK may carry the name too; it fits Ed25519 keys only.
        let mut jwk = ed.to_jwk_value();
        jwk["alg"] = json!("Ed25519");
        assert_eq!(PublicKey::parse(&jwk.to_string(), None).unwrap().alg(), KeyAlg::EdDsa);
        let mut rsa: Value = serde_json::from_str(RFC7638_JWK).unwrap();
        rsa["alg"] = json!("Ed25519");
        assert!(PublicKey::parse(&rsa.to_string(), None).unwrap_err().0.contains("does not fit"));
    }

    #[test]
    fn pem_and_jwk_forms_parse_to_the_same_key() {
        for (_, public_file, alg) in pairs() {
            let from_pem = PublicKey::parse(&testdata(public_file), None).unwrap();
            let jwk = from_pem.to_jwk_value();
            assert_eq!(jwk["alg"], alg.as_str());
            let mut bare = jwk.clone();
            bare.as_object_mut().unwrap().remove("kid");
            bare.as_object_mut().unwrap().remove("alg");
            let from_jwk = PublicKey::parse(&bare.to_string(), None).unwrap();
            assert_eq!(from_jwk, from_pem, "{alg}");
            // The thumbprint kid is stable.
            assert_eq!(from_pem.kid(), PublicKey::parse(&testdata(public_file), None).unwrap().kid());
            assert_eq!(from_pem.kid().len(), 43);
        }
        let pkcs1 = PublicKey::parse(&testdata("rsa_pkcs1_public.pem"), None).unwrap();
        let spki = PublicKey::parse(&testdata("rsa_public.pem"), None).unwrap();
        assert_eq!(pkcs1, spki);
    }

    #[test]
    fn stored_form_round_trips() {
        for (_, public_file, _) in pairs() {
            let key = public(public_file, "my key");
            let stored = key.to_stored();
            assert!(stored.starts_with(r#"{"kty":""#), "{stored}");
            assert!(stored.ends_with(&format!(r#""kid":"my key","alg":"{}"}}"#, key.alg())), "{stored}");
            let back = PublicKey::from_stored(&stored).unwrap();
            assert_eq!(back, key);
            assert_eq!(back.to_stored(), stored);
            assert_eq!(format!("{back:?}"), format!("PublicKey {{ alg: {:?}, kid: \"my key\" }}", key.alg()));
        }
        assert!(PublicKey::from_stored(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
        )
        .is_err());
        assert!(PublicKey::from_stored("garbage").is_err());
    }

    #[test]
    fn thumbprints_match_the_rfcs() {
        let key = PublicKey::parse(RFC7638_JWK, None).unwrap();
        assert_eq!(key.kid(), "2011-04-29", "the JWK's own kid wins over the thumbprint");
        let mut bare: Value = serde_json::from_str(RFC7638_JWK).unwrap();
        bare.as_object_mut().unwrap().remove("kid");
        let key = PublicKey::parse(&bare.to_string(), None).unwrap();
        assert_eq!(key.kid(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(key.alg(), KeyAlg::Rs256);
        // An explicit kid wins over both.
        assert_eq!(PublicKey::parse(RFC7638_JWK, Some("mine")).unwrap().kid(), "mine");
        // RFC 8037 A.3.
        let ed = PublicKey::parse(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            None,
        )
        .unwrap();
        assert_eq!(ed.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!(ed.alg(), KeyAlg::EdDsa);
    }

    #[test]
    fn parse_many_reads_sets_and_single_keys() {
        let a = public("ec_public.pem", "a");
        let b = public("ed25519_public.pem", "b");
        let set = json!({"keys": [a.to_jwk_value(), b.to_jwk_value()]}).to_string();
        assert_eq!(PublicKey::parse_many(&set).unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(PublicKey::parse_many(&a.to_stored()).unwrap(), vec![a.clone()]);
        let pem = PublicKey::parse_many(&testdata("rsa_public.pem")).unwrap();
        assert_eq!(pem.len(), 1);
        assert_eq!(pem[0].alg(), KeyAlg::Rs256);

        let dup = json!({"keys": [a.to_jwk_value(), a.to_jwk_value()]}).to_string();
        assert!(PublicKey::parse_many(&dup).unwrap_err().0.contains("same kid"));
        assert!(PublicKey::parse_many(r#"{"keys":[]}"#).is_err());
        let bad = json!({"keys": [a.to_jwk_value(), {"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
        assert!(PublicKey::parse_many(&bad).unwrap_err().0.starts_with("key 2:"));
        assert!(PublicKey::parse(&set, None).is_err(), "parse takes one key");
        // A set's own kids follow the same rule as a given one.
        for kid in ["", "a\u{0}b", "line\nbreak", &"k".repeat(MAX_KID_CHARS + 1)] {
            let mut jwk = b.to_jwk_value();
            jwk["kid"] = json!(kid);
            let set = json!({"keys": [a.to_jwk_value(), jwk]}).to_string();
            assert!(PublicKey::parse_many(&set).unwrap_err().0.starts_with("key 2: a key id is"), "{kid:?}");
        }
    }

    #[test]
    fn refuses_private_keys() {
        for (private, _, _) in pairs() {
            let err = PublicKey::parse(&testdata(private), None).unwrap_err();
            assert!(err.0.contains("private key"), "{err}");
            assert!(PublicKey::parse_many(&testdata(private)).is_err());
        }
        // RFC 7517 A.2's private EC key.
        let jwk = r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}"#;
        assert!(PublicKey::parse(jwk, None).unwrap_err().0.contains("private"));
        // The same without "d" is fine.
        let public_jwk = jwk.replace(r#","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE""#, "");
        assert_eq!(PublicKey::parse(&public_jwk, None).unwrap().alg(), KeyAlg::Es256);
    }

    #[test]
    fn refuses_weak_symmetric_and_unsupported_keys() {
        let small = PublicKey::parse(&testdata("rsa1024_public.pem"), None).unwrap_err();
        assert!(small.0.contains("1024 bits"), "{small}");
        let oct = PublicKey::parse(r#"{"kty":"oct","k":"c2VjcmV0"}"#, None).unwrap_err();
        assert!(oct.0.contains("symmetric"), "{oct}");
        assert!(PublicKey::parse(&testdata("ec_p384_public.pem"), None).unwrap_err().0.contains("P-256"));
        assert!(PublicKey::parse(&testdata("ec_secp256k1_public.pem"), None).unwrap_err().0.contains("P-256"));
        let p384 = r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#;
        assert!(PublicKey::parse(p384, None).unwrap_err().0.contains("P-256"));
        let x25519 = r#"{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert!(PublicKey::parse(x25519, None).is_err());
        // A point that is not on the curve.
        let off_curve = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode([1u8; 32]),
            URL_SAFE_NO_PAD.encode([1u8; 32])
        );
        assert!(PublicKey::parse(&off_curve, None).is_err());
        let short_ed = r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#;
        assert!(PublicKey::parse(short_ed, None).is_err());
        assert!(PublicKey::parse("", None).is_err());
        assert!(PublicKey::parse("ssh-ed25519 AAAAC3Nz", None).is_err());
        let too_long = format!("{}{}", testdata("ed25519_public.pem"), " ".repeat(MAX_KEY_TEXT));
        assert!(PublicKey::parse(&too_long, None).unwrap_err().0.contains("16 KiB"));
        assert!(PublicKey::parse_many(&too_long).is_err());
        let two = format!("{}{}", testdata("ed25519_public.pem"), testdata("ec_public.pem"));
        assert!(PublicKey::parse(&two, None).is_err());
    }

    #[test]
    fn refuses_jwk_alg_or_use_that_contradicts_the_key() {
        let mut jwk: Value = serde_json::from_str(RFC7638_JWK).unwrap();
        for alg in ["ES256", "PS256", "HS256", "none", "RS512"] {
            jwk["alg"] = json!(alg);
            let err = PublicKey::parse(&jwk.to_string(), None).unwrap_err();
            assert!(err.0.contains("does not fit"), "{alg}: {err}");
        }
        jwk["alg"] = json!("RS256");
        jwk["use"] = json!("enc");
        assert!(PublicKey::parse(&jwk.to_string(), None).is_err());
        jwk["use"] = json!("sig");
        assert!(PublicKey::parse(&jwk.to_string(), None).is_ok());
        jwk["kid"] = json!("");
        assert!(PublicKey::parse(&jwk.to_string(), None).is_err());
        assert!(PublicKey::parse(RFC7638_JWK, Some("bad\nkid")).is_err());
    }

    #[test]
    fn refuses_alg_none_and_hmac() {
        let keys = [public("rsa_public.pem", "k1")];
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
        assert_eq!(verify(&none, &keys, &rules()), Err(AssertionError::AlgorithmRefused("none".into())));
        let none_kid = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "k1"})), b64(&claims()));
        assert_eq!(verify(&none_kid, &keys, &rules()), Err(AssertionError::AlgorithmRefused("none".into())));
        // The algorithm-confusion attack: HMAC keyed with the (public) RSA key's PEM.
        let pem = testdata("rsa_public.pem");
        for alg in [Algorithm::HS256, Algorithm::HS512] {
            let hs =
                jsonwebtoken::encode(&Header::new(alg), &claims(), &EncodingKey::from_secret(pem.as_bytes()).unwrap())
                    .unwrap();
            assert_eq!(verify(&hs, &keys, &rules()), Err(AssertionError::AlgorithmRefused(format!("{alg:?}"))));
        }
        let weird = format!("{}.{}.AAAA", b64(&json!({"alg": "RS256\"; drop"})), b64(&claims()));
        assert_eq!(verify(&weird, &keys, &rules()), Err(AssertionError::AlgorithmRefused("(unrecognized)".into())));
        assert!(!AssertionError::AlgorithmRefused("none".into()).to_string().is_empty());
    }

    #[test]
    fn refuses_key_mismatch_wrong_key_and_unknown_kid() {
        let rsa = public("rsa_public.pem", "rsa");
        let ec = public("ec_public.pem", "ec");
        // ES256 token naming the RSA key.
        let token = sign("ec_private.pem", KeyAlg::Es256, Some("rsa"), &claims());
        assert_eq!(verify(&token, &[rsa.clone(), ec.clone()], &rules()), Err(AssertionError::KeyMismatch));
        // ES256 token without kid, only RSA keys registered.
        let token = sign("ec_private.pem", KeyAlg::Es256, None, &claims());
        assert_eq!(verify(&token, std::slice::from_ref(&rsa), &rules()), Err(AssertionError::KeyMismatch));
        assert_eq!(verify(&token, &[], &rules()), Err(AssertionError::UnknownKey));
        // Unknown kid.
        let token = sign("ec_private.pem", KeyAlg::Es256, Some("nope"), &claims());
        assert_eq!(verify(&token, &[rsa, ec], &rules()), Err(AssertionError::UnknownKey));
        // Signed by another RSA key than the registered one.
        let token = sign("rsa_private.pem", KeyAlg::Rs256, Some("2011-04-29"), &claims());
        let other = PublicKey::parse(RFC7638_JWK, None).unwrap();
        assert_eq!(verify(&token, &[other], &rules()), Err(AssertionError::BadSignature));
    }

    #[test]
    fn refuses_tampering() {
        let (token, keys) = ed_token(&claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("admin");
        let forged = b64(&c);
        parts[1] = &forged;
        assert_eq!(verify(&parts.join("."), &keys, &rules()), Err(AssertionError::BadSignature));
        // A signature from one token on another's payload.
        let (other, _) = ed_token(&json!({"iss": "x", "sub": "x", "aud": TOKEN_URL, "exp": NOW + 10, "jti": "2"}));
        let spliced = format!("{}.{}", &token[..token.rfind('.').unwrap()], &other[other.rfind('.').unwrap() + 1..]);
        assert_eq!(verify(&spliced, &keys, &rules()), Err(AssertionError::BadSignature));
        assert_eq!(verify(&format!("{token}."), &keys, &rules()), Err(AssertionError::Malformed));
        let no_sig = &token[..token.rfind('.').unwrap() + 1];
        assert_eq!(verify(no_sig, &keys, &rules()), Err(AssertionError::Malformed));
    }

    fn ed_verify(claims: &Value, rules: &Rules) -> Result<Verified, AssertionError> {
        let (token, keys) = ed_token(claims);
        verify(&token, &keys, rules)
    }

    fn without(name: &str) -> Value {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        c
    }

    fn with(name: &str, value: Value) -> Value {
        let mut c = claims();
        c[name] = value;
        c
    }

    #[test]
    fn checks_required_claims() {
        for name in ["iss", "sub", "aud", "exp", "jti"] {
            assert_eq!(ed_verify(&without(name), &rules()), Err(AssertionError::MissingClaim(name)), "{name}");
        }
        for name in ["iss", "sub", "jti"] {
            assert_eq!(ed_verify(&with(name, json!("")), &rules()), Err(AssertionError::MissingClaim(name)), "{name}");
        }
        assert_eq!(ed_verify(&with("jti", json!("j".repeat(256))), &rules()).unwrap().jti.len(), 256);
        assert_eq!(ed_verify(&with("jti", json!("j".repeat(257))), &rules()), Err(AssertionError::Malformed));
        assert_eq!(ed_verify(&with("exp", json!("soon")), &rules()), Err(AssertionError::Malformed));
        assert_eq!(ed_verify(&with("iss", json!(7)), &rules()), Err(AssertionError::Malformed));
        // iss != sub is the caller's business (a JWT-bearer grant has a user as sub).
        let v = ed_verify(&with("sub", json!("user_1")), &rules()).unwrap();
        assert_eq!((v.iss.as_str(), v.sub.as_str(), v.scope), ("cl_1", "user_1", None));
    }

    #[test]
    fn checks_audience() {
        assert_eq!(
            ed_verify(&with("aud", json!("https://evil.example/token")), &rules()),
            Err(AssertionError::WrongAudience)
        );
        assert_eq!(ed_verify(&with("aud", json!([])), &rules()), Err(AssertionError::WrongAudience));
        assert_eq!(ed_verify(&with("aud", json!(["a", "b"])), &rules()), Err(AssertionError::WrongAudience));
        assert!(ed_verify(&with("aud", json!(["a", "https://kw.example"])), &rules()).is_ok());
        assert!(ed_verify(&with("aud", json!("https://kw.example")), &rules()).is_ok());
        // No prefix or case games.
        assert_eq!(
            ed_verify(&with("aud", json!("https://kw.example/oauth/token/")), &rules()),
            Err(AssertionError::WrongAudience)
        );
        assert_eq!(ed_verify(&with("aud", json!("HTTPS://kw.example")), &rules()), Err(AssertionError::WrongAudience));
        let none = Rules { audiences: &[], ..rules() };
        assert_eq!(ed_verify(&claims(), &none), Err(AssertionError::WrongAudience));
    }

    #[test]
    fn checks_times() {
        let r = rules();
        assert_eq!(ed_verify(&with("exp", json!(NOW - 31)), &r), Err(AssertionError::Expired));
        assert_eq!(ed_verify(&with("exp", json!(NOW - 30)), &r), Err(AssertionError::Expired));
        assert!(ed_verify(&with("exp", json!(NOW - 29)), &r).is_ok(), "within leeway");
        // One hour ahead (authlib's default), and a client clock up to the leeway fast.
        assert!(ed_verify(&with("exp", json!(NOW + 3600)), &r).is_ok());
        assert!(ed_verify(&with("exp", json!(NOW + 3630)), &r).is_ok(), "within leeway");
        assert_eq!(ed_verify(&with("exp", json!(NOW + 3631)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(NOW + 86_400)), &r), Err(AssertionError::TooFarAhead));
        let short = Rules { max_ahead: 300, ..rules() };
        assert!(ed_verify(&with("exp", json!(NOW + 330)), &short).is_ok());
        assert_eq!(ed_verify(&with("exp", json!(NOW + 331)), &short), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(1e300)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(i64::MAX)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(i64::MIN)), &r), Err(AssertionError::Expired));
        assert_eq!(ed_verify(&with("exp", json!(NOW as f64 + 60.5)), &r).unwrap().exp, NOW + 60);
        let strict = Rules { leeway: 0, ..rules() };
        assert_eq!(ed_verify(&with("exp", json!(NOW + 3601)), &strict), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(NOW)), &strict), Err(AssertionError::Expired));
        for name in ["nbf", "iat"] {
            assert!(ed_verify(&with(name, json!(NOW + 30)), &r).is_ok(), "{name}");
            assert_eq!(ed_verify(&with(name, json!(NOW + 31)), &r), Err(AssertionError::NotYetValid), "{name}");
            assert!(ed_verify(&with(name, json!(NOW - 3600)), &r).is_ok(), "{name}");
        }
    }

    #[test]
    fn peek_reads_without_verifying() {
        let token = sign("ec_private.pem", KeyAlg::Es256, Some("k9"), &with("sub", json!("u")));
        assert_eq!(
            peek(&token).unwrap(),
            Unverified { alg: "ES256".into(), kid: Some("k9".into()), iss: Some("cl_1".into()), sub: Some("u".into()) }
        );
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&json!({})));
        assert_eq!(peek(&none).unwrap(), Unverified { alg: "none".into(), kid: None, iss: None, sub: None });
        assert_eq!(peek("a.b"), Err(AssertionError::Malformed));
        assert_eq!(peek(&"a".repeat(MAX_TOKEN_LEN + 1)), Err(AssertionError::TooLong));
        assert_eq!(verify(&"a".repeat(MAX_TOKEN_LEN + 1), &[], &rules()), Err(AssertionError::TooLong));
        let crit = format!("{}.{}.AAAA", b64(&json!({"alg": "EdDSA", "crit": ["b64"], "b64": false})), b64(&claims()));
        assert_eq!(peek(&crit), Err(AssertionError::Malformed));
    }

    #[test]
    fn error_messages_do_not_echo_the_token() {
        let (token, keys) = ed_token(&with("aud", json!("nope")));
        let err = verify(&token, &keys, &rules()).unwrap_err();
        assert_eq!(err, AssertionError::WrongAudience);
        assert!(!err.to_string().contains("nope"));
        assert_eq!(AssertionError::MissingClaim("jti").to_string(), "the assertion has no jti claim");
    }

    /// Strings built from JWK/JWT vocabulary, so that the parsers get past the first
    /// byte more often than with uniformly random text.
    fn jsonish() -> impl Strategy<Value = String> {
        let tokens = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(":".to_owned()),
            Just(",".to_owned()),
            Just("null".to_owned()),
            Just("1".to_owned()),
            Just("-1e400".to_owned()),
            Just("\"".to_owned()),
            prop::sample::select(vec![
                "kty", "RSA", "EC", "OKP", "oct", "crv", "P-256", "Ed25519", "X25519", "n", "e", "x", "y", "d", "k",
                "alg", "RS256", "ES256", "EdDSA", "none", "kid", "keys", "use", "sig", "key_ops", "AQAB", "iss", "sub",
                "aud", "exp", "jti", "nbf", "iat",
            ])
            .prop_map(|s| format!("\"{s}\"")),
            prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| format!("\"{}\"", URL_SAFE_NO_PAD.encode(b))),
        ];
        prop::collection::vec(tokens, 0..40).prop_map(|t| t.concat())
    }

    /// JWKs of the right shape with byte strings of arbitrary lengths and values.
    fn random_jwk() -> impl Strategy<Value = String> {
        let bytes = || prop::collection::vec(any::<u8>(), 0..300);
        (0..3u8, bytes(), bytes()).prop_map(|(kind, a, b)| {
            let (a, b) = (URL_SAFE_NO_PAD.encode(a), URL_SAFE_NO_PAD.encode(b));
            match kind {
                0 => json!({"kty": "RSA", "n": a, "e": b}),
                1 => json!({"kty": "EC", "crv": "P-256", "x": a, "y": b}),
                _ => json!({"kty": "OKP", "crv": "Ed25519", "x": a}),
            }
            .to_string()
        })
    }

    fn random_pem() -> impl Strategy<Value = String> {
        let label = prop::sample::select(vec!["PUBLIC KEY", "RSA PUBLIC KEY", "X"]);
        (label, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(label, der)| {
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                base64::engine::general_purpose::STANDARD.encode(der)
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn key_parsers_never_panic(s in prop_oneof![any::<String>(), jsonish(), random_jwk(), random_pem()]) {
            let _ = PublicKey::parse(&s, None);
            let _ = PublicKey::parse(&s, Some("k"));
            let _ = PublicKey::parse_many(&s);
            let _ = PublicKey::from_stored(&s);
            let _ = PublicKey::parse_many(&format!("{{\"keys\":[{s}]}}"));
        }

        #[test]
        fn peek_and_verify_never_panic(
            s in any::<String>(),
            header in jsonish(),
            payload in jsonish(),
            sig in "[A-Za-z0-9_-]{0,100}",
        ) {
            let keys = [public("ed25519_public.pem", "ed"), public("ec_public.pem", "ec")];
            let _ = peek(&s);
            let _ = verify(&s, &keys, &rules());
            let token = format!("{}.{}.{sig}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&payload));
            let _ = peek(&token);
            let _ = verify(&token, &keys, &rules());
            let token = format!("{}.{}.{sig}", b64(&json!({"alg": "EdDSA"})), URL_SAFE_NO_PAD.encode(&payload));
            prop_assert!(verify(&token, &keys, &rules()).is_err());
        }
    }

    /// Changes one byte of `token` to `to` (printable ASCII), if that is a change.
    fn mutate(token: &str, index: usize, to: u8) -> Option<String> {
        let mut bytes = token.as_bytes().to_vec();
        let i = index % bytes.len();
        if bytes[i] == to {
            return None;
        }
        bytes[i] = to;
        String::from_utf8(bytes).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_single_byte_change_is_refused_ed25519_es256(index in any::<usize>(), to in 0x20u8..0x7f, which in 0..2u8) {
            static TOKENS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            let tokens = TOKENS.get_or_init(|| {
                pairs()[1..].iter().map(|(private, _, alg)| sign(private, *alg, Some("k"), &claims())).collect()
            });
            let (_, public_file, _) = pairs()[1 + usize::from(which)];
            let token = &tokens[usize::from(which)];
            let keys = [public(public_file, "k")];
            prop_assert!(verify(token, &keys, &rules()).is_ok());
            if let Some(changed) = mutate(token, index, to) {
                prop_assert!(verify(&changed, &keys, &rules()).is_err(), "accepted {changed}");
            }
        }
    }

    proptest! {
        // RSA in a debug build is slow; fewer cases, one signature.
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_single_byte_change_is_refused_rs256(index in any::<usize>(), to in 0x20u8..0x7f) {
            static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let token = TOKEN.get_or_init(|| sign("rsa_private.pem", KeyAlg::Rs256, None, &claims()));
            let keys = [public("rsa_public.pem", "k")];
            if let Some(changed) = mutate(token, index, to) {
                prop_assert!(verify(&changed, &keys, &rules()).is_err(), "accepted {changed}");
            }
        }
    }
}
