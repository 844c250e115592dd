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
//! Only RS256, ES256 (P-256) and EdDSA (Ed25519) are accepted. `none` and HMAC are refused
//! before any key is looked at: an HMAC "key" would be a secret the server shares, which
//! defeats the point of a key pair, and accepting HS256 next to RS256 is the classic
//! algorithm-confusion hole (the public key used as the HMAC secret). A key is bound to
//! one algorithm when registered, and a token's header `alg` must equal it. Header
//! members that point at keys (`jwk`, `jku`, `x5u`, `x5c`) are ignored: keys come from
//! registration only.
//!
//! Signature checking is done by the `jsonwebtoken` crate's RustCrypto backend; this
//! module parses the token itself so that it controls which claims are required and how
//! each failure is reported.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, EllipticCurveKeyType, Jwk,
    OctetKeyPairParameters, OctetKeyPairType, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey};
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
/// The most clock skew forgiven on the "at most `max_ahead`" check, whatever
/// [`Rules::leeway`] says. See [`Rules::leeway`].
pub const MAX_AHEAD_ALLOWANCE: i64 = 5;

/// Algorithms a registered key may sign with. `none` and HMAC are never accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048 bits or more.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlg {
    pub const ALL: [KeyAlg; 3] = [KeyAlg::Rs256, KeyAlg::Es256, KeyAlg::EdDsa];

    /// The JOSE name, as in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Es256 => "ES256",
            KeyAlg::EdDsa => "EdDSA",
        }
    }

    /// The JOSE name, exactly (JOSE names are case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
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

/// The public numbers of a key, as canonical base64url (no padding, no leading zero
/// octets in RSA integers, full-length coordinates), so that equal keys compare equal
/// and the RFC 7638 thumbprint is well defined.
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

    fn decoding_key(&self) -> Option<DecodingKey> {
        match self {
            Material::Rsa { n, e } => DecodingKey::from_rsa_components(n, e).ok(),
            Material::Ec { x, y } => DecodingKey::from_ec_components(x, y).ok(),
            Material::Ed { x } => DecodingKey::from_ed_components(x).ok(),
        }
    }

    /// RFC 7638 thumbprint: base64url SHA-256 of the required members in lexical order.
    fn thumbprint(&self) -> Result<String, Invalid> {
        self.jwk().thumbprint(ThumbprintHash::SHA256).map_err(|_| Invalid("cannot compute the key's thumbprint".into()))
    }

    /// Builds RSA material from big-endian integers, enforcing the size rules.
    fn rsa(n: &[u8], e: &[u8]) -> Result<Self, Invalid> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = bit_len(n);
        if bits < MIN_RSA_BITS {
            return Err(Invalid(format!("this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")));
        }
        if bits > MAX_RSA_BITS {
            return Err(Invalid(format!("this RSA key has {bits} bits; at most {MAX_RSA_BITS} are accepted")));
        }
        // The rsa crate accepts 2 < e < 2^33; an even e is not an RSA key at all.
        let e_ok = !e.is_empty()
            && e.len() <= 5
            && e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) < (1 << 33)
            && e.last().is_some_and(|b| b & 1 == 1)
            && !(e.len() == 1 && e[0] < 3);
        if !e_ok || n.last().is_some_and(|b| b & 1 == 0) {
            return Err(Invalid("not a valid RSA public key".into()));
        }
        Ok(Material::Rsa { n: URL_SAFE_NO_PAD.encode(n), e: URL_SAFE_NO_PAD.encode(e) })
    }

    /// Builds P-256 material from coordinates, refusing a point that is not on the curve.
    fn ec(x: &[u8], y: &[u8]) -> Result<Self, Invalid> {
        if x.len() != 32 || y.len() != 32 {
            return Err(Invalid("not a valid P-256 public key: x and y must be 32 bytes".into()));
        }
        let m = Material::Ec { x: URL_SAFE_NO_PAD.encode(x), y: URL_SAFE_NO_PAD.encode(y) };
        m.check_usable("not a valid P-256 public key: the point is not on the curve")?;
        Ok(m)
    }

    /// Builds Ed25519 material, refusing bytes that are not a curve point.
    fn ed(x: &[u8]) -> Result<Self, Invalid> {
        if x.len() != 32 {
            return Err(Invalid("not a valid Ed25519 public key: x must be 32 bytes".into()));
        }
        let m = Material::Ed { x: URL_SAFE_NO_PAD.encode(x) };
        m.check_usable("not a valid Ed25519 public key")?;
        Ok(m)
    }

    /// Asks the crypto backend to load the key, so that a key which could never verify
    /// anything is refused at registration rather than at every later sign-in. A dummy
    /// signature check errors (rather than answering "invalid") only if the key is bad.
    fn check_usable(&self, message: &str) -> Result<(), Invalid> {
        let bad = || Invalid(message.to_owned());
        let key = self.decoding_key().ok_or_else(bad)?;
        jsonwebtoken::crypto::verify("AA", b"", &key, self.alg().jwt()).map_err(|_| bad())?;
        Ok(())
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
        if alg != material.alg().as_str() {
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

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        Some(b) => (n.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
        None => 0,
    }
}

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 0 unused bits, 04 … } }. The
/// encoding is unique, so matching it exactly both identifies the curve and refuses
/// explicit curve parameters and compressed points.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// OID contents of rsaEncryption, id-ecPublicKey.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

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
    let malformed = || Invalid("malformed PEM".into());
    let rest = text.strip_prefix("-----BEGIN ").ok_or_else(malformed)?;
    let (label, rest) = rest.split_once("-----").ok_or_else(malformed)?;
    let end = format!("-----END {label}-----");
    let body = rest.strip_suffix(end.as_str()).ok_or_else(malformed)?;
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(body).map_err(|_| malformed())?;
    match label {
        "PUBLIC KEY" => parse_spki(&der),
        "RSA PUBLIC KEY" => parse_pkcs1(&der),
        _ => Err(Invalid(format!("unsupported PEM block {}: expected PUBLIC KEY or RSA PUBLIC KEY", shown(label)))),
    }
}

fn parse_spki(der: &[u8]) -> Result<Material, Invalid> {
    if let Some(point) = der.strip_prefix(&P256_SPKI_PREFIX) {
        if point.len() == 64 {
            return Material::ec(&point[..32], &point[32..]);
        }
    }
    if let Some(x) = der.strip_prefix(&ED25519_SPKI_PREFIX) {
        return Material::ed(x);
    }
    let unsupported = || Invalid("unsupported public key: use RSA (2048 bits or more), EC P-256 or Ed25519".into());
    // SEQUENCE { SEQUENCE { OID, params }, BIT STRING }
    let (outer, rest) = der_tlv(der, 0x30).ok_or_else(unsupported)?;
    if !rest.is_empty() {
        return Err(unsupported());
    }
    let (alg_id, rest) = der_tlv(outer, 0x30).ok_or_else(unsupported)?;
    let (bits, rest) = der_tlv(rest, 0x03).ok_or_else(unsupported)?;
    let (oid, params) = der_tlv(alg_id, 0x06).ok_or_else(unsupported)?;
    if !rest.is_empty() {
        return Err(unsupported());
    }
    if oid == OID_EC {
        return Err(Invalid("this EC key is not on P-256 (or uses a compressed point): use P-256".into()));
    }
    // rsaEncryption's parameters are NULL (05 00), which some encoders leave out.
    if oid != OID_RSA || !(params.is_empty() || params == [0x05, 0x00]) {
        return Err(unsupported());
    }
    let pkcs1 = bits.strip_prefix(&[0x00]).ok_or_else(unsupported)?;
    parse_pkcs1(pkcs1)
}

/// PKCS#1 RSAPublicKey DER, parsed by the crypto backend.
fn parse_pkcs1(der: &[u8]) -> Result<Material, Invalid> {
    let jwk = Jwk::from_decoding_key(&DecodingKey::from_rsa_der(der), None)
        .map_err(|_| Invalid("not a valid RSA public key (2048 to 8192 bits)".into()))?;
    let AlgorithmParameters::RSA(params) = jwk.algorithm else {
        return Err(Invalid("not a valid RSA public key".into()));
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| Invalid("not a valid RSA public key".into()));
    Material::rsa(&decode(&params.n)?, &decode(&params.e)?)
}

/// One DER TLV with the expected tag: its contents and what follows it. Definite
/// lengths only, up to three length octets (16 MiB, far beyond any key text we accept).
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 || rest.len() < count {
            return None;
        }
        let (octets, after) = rest.split_at(count);
        rest = after;
        octets.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
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
    #[error("the {0} signing algorithm is not accepted; use RS256, ES256 or EdDSA")]
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
    /// Accepted `aud` values (the token endpoint URL and the issuer). `aud` may be a
    /// string or an array; one match suffices.
    pub audiences: &'a [&'a str],
    /// Now, Unix seconds (passed in, so tests control the clock).
    pub now: i64,
    /// Longest allowed `exp - now`, seconds (300).
    pub max_ahead: i64,
    /// Clock-skew leeway, seconds (e.g. 30), for `exp` already past and for `nbf`/`iat`
    /// in the future. On the `max_ahead` bound only `min(leeway, MAX_AHEAD_ALLOWANCE)`
    /// (5 s) is forgiven: enough for a client whose clock runs a little fast and sets
    /// `exp = its now + 300`, but not a way to stretch the 5-minute limit, whose purpose
    /// is to bound how long a seen `jti` must be remembered.
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

/// The three parts of a compact JWS, the header decoded.
struct Parts<'t> {
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
    alg: String,
    kid: Option<String>,
}

impl<'t> Parts<'t> {
    fn split(token: &'t str) -> Result<Self, AssertionError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AssertionError::TooLong);
        }
        let mut it = token.splitn(3, '.');
        let (Some(header), Some(payload), Some(signature)) = (it.next(), it.next(), it.next()) else {
            return Err(AssertionError::Malformed);
        };
        if signature.contains('.') {
            // Five parts: a JWE, which is not what a client assertion is.
            return Err(AssertionError::Malformed);
        }
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header = decode_object(header)?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err(AssertionError::Malformed),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(AssertionError::Malformed),
        };
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; none are.
        if header.contains_key("crit") {
            return Err(AssertionError::Malformed);
        }
        Ok(Parts { signing_input, payload, signature, alg, kid })
    }

    fn claims(&self) -> Result<Map<String, Value>, AssertionError> {
        decode_object(self.payload)
    }
}

/// A base64url (strict: no padding, no stray trailing bits) JSON object.
fn decode_object(part: &str) -> Result<Map<String, Value>, AssertionError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AssertionError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(AssertionError::Malformed),
    }
}

/// A string claim: absent is `None`, present but not a string is malformed.
fn str_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AssertionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AssertionError::Malformed),
    }
}

/// A NumericDate claim (RFC 7519 §2): seconds, possibly fractional, truncated.
fn date_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AssertionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            // `as` saturates, so an absurd exp becomes i64::MAX and fails max_ahead.
            None => n.as_f64().map(|f| Some(f as i64)).ok_or(AssertionError::Malformed),
        },
        Some(_) => Err(AssertionError::Malformed),
    }
}

/// Reads `alg`, `kid`, `iss` and `sub` without checking anything else, only to choose
/// whose keys to verify with.
pub fn peek(token: &str) -> Result<Unverified, AssertionError> {
    let parts = Parts::split(token)?;
    let claims = parts.claims()?;
    Ok(Unverified { iss: str_claim(&claims, "iss")?, sub: str_claim(&claims, "sub")?, alg: parts.alg, kid: parts.kid })
}

/// The refused algorithm's name for [`AssertionError::AlgorithmRefused`]: it comes from
/// the token, so only a short plain name is kept.
fn refused(alg: &str) -> AssertionError {
    let plain = (1..=16).contains(&alg.len()) && alg.bytes().all(|b| b.is_ascii_alphanumeric());
    AssertionError::AlgorithmRefused(if plain { alg.to_owned() } else { "(unrecognized)".into() })
}

/// Verifies `token` against a client's registered `keys`.
///
/// The header `alg` must be RS256, ES256 or EdDSA; the key is the one named by the
/// header `kid` (whose algorithm must equal `alg`) or, without a `kid`, any key of that
/// algorithm. Then: `iss`, `sub`, `aud` (one of `rules.audiences`), `exp` (not past,
/// not beyond `max_ahead`), `nbf` and `iat` (not in the future) and `jti` (1–256
/// characters). `iss == sub` and the single use of `jti` are left to the caller.
pub fn verify(token: &str, keys: &[PublicKey], rules: &Rules) -> Result<Verified, AssertionError> {
    let parts = Parts::split(token)?;
    let alg = KeyAlg::parse(&parts.alg).ok_or_else(|| refused(&parts.alg))?;
    let candidates: Vec<&PublicKey> = match &parts.kid {
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
    // Decoded here, strictly, so that two spellings of one signature cannot both pass.
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
    let non_empty = |name: &'static str| -> Result<String, AssertionError> {
        str_claim(&claims, name)?.filter(|s| !s.is_empty()).ok_or(AssertionError::MissingClaim(name))
    };
    let iss = non_empty("iss")?;
    let sub = non_empty("sub")?;

    let audience_ok = match claims.get("aud") {
        None => return Err(AssertionError::MissingClaim("aud")),
        Some(Value::String(aud)) => rules.audiences.contains(&aud.as_str()),
        Some(Value::Array(auds)) => {
            let mut any = false;
            for aud in auds {
                let Value::String(aud) = aud else {
                    return Err(AssertionError::Malformed);
                };
                any |= rules.audiences.contains(&aud.as_str());
            }
            any
        }
        Some(_) => return Err(AssertionError::Malformed),
    };
    if !audience_ok {
        return Err(AssertionError::WrongAudience);
    }

    let leeway = rules.leeway.max(0);
    let exp = date_claim(&claims, "exp")?.ok_or(AssertionError::MissingClaim("exp"))?;
    if exp <= rules.now.saturating_sub(leeway) {
        return Err(AssertionError::Expired);
    }
    let latest = rules.now.saturating_add(rules.max_ahead).saturating_add(leeway.min(MAX_AHEAD_ALLOWANCE));
    if exp > latest {
        return Err(AssertionError::TooFarAhead);
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = date_claim(&claims, name)? {
            if t > rules.now.saturating_add(leeway) {
                return Err(AssertionError::NotYetValid);
            }
        }
    }

    let jti = non_empty("jti")?;
    if jti.chars().count() > MAX_JTI_CHARS {
        return Err(AssertionError::Malformed);
    }
    let scope = str_claim(&claims, "scope")?;
    Ok(Verified { iss, sub, jti, exp, kid: key.kid.clone(), scope })
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
        Rules { audiences: &AUDS, now: NOW, max_ahead: 300, leeway: 30 }
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
        for other in ["none", "HS256", "rs256", "PS256", "ES384", "eddsa", ""] {
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
        assert!(ed_verify(&with("exp", json!(NOW + 300)), &r).is_ok());
        assert!(ed_verify(&with("exp", json!(NOW + 305)), &r).is_ok(), "small allowance");
        assert_eq!(ed_verify(&with("exp", json!(NOW + 306)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(NOW + 3600)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(1e300)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(i64::MAX)), &r), Err(AssertionError::TooFarAhead));
        assert_eq!(ed_verify(&with("exp", json!(i64::MIN)), &r), Err(AssertionError::Expired));
        assert_eq!(ed_verify(&with("exp", json!(NOW as f64 + 60.5)), &r).unwrap().exp, NOW + 60);
        let strict = Rules { leeway: 0, ..rules() };
        assert_eq!(ed_verify(&with("exp", json!(NOW + 301)), &strict), Err(AssertionError::TooFarAhead));
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
            format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", STANDARD.encode(der))
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
