//! GS1 identifiers in the two forms EPCIS 2.0 uses, checked and normalised to one.
//!
//! Accepted forms (GS1 Tag Data Standard 2.x and GS1 Digital Link 1.x):
//!
//! | identifier | EPC URN | Digital Link path |
//! |---|---|---|
//! | trade item instance | `urn:epc:id:sgtin:CP.IR.serial` | `/01/{gtin}/21/{serial}` (a `/10/{lot}` before `/21` is allowed) |
//! | trade item batch/lot | `urn:epc:class:lgtin:CP.IR.lot` | `/01/{gtin}/10/{lot}` |
//! | trade item class | `urn:epc:idpat:sgtin:CP.IR.*` | `/01/{gtin}` |
//! | logistic unit | `urn:epc:id:sscc:CP.SR` | `/00/{sscc}` |
//! | location | `urn:epc:id:sgln:CP.LR.ext` (`0`: none) | `/414/{gln}[/254/{ext}]` |
//! | party | `urn:epc:id:pgln:CP.PR` | `/417/{gln}` |
//! | individual asset | `urn:epc:id:giai:CP.asset` | `/8004/{giai}` |
//! | returnable asset | `urn:epc:id:grai:CP.AT.serial` | `/8003/0{grai13}{serial}` |
//! | document | `urn:epc:id:gdti:CP.DT.serial` | `/253/{gdti13}{serial}` |
//! | service relation | `urn:epc:id:gsrn:CP.SR` | `/8018/{gsrn}` |
//!
//! A Digital Link may use any domain and a path prefix before the primary key; its query
//! string is ignored. GTINs may be 8, 12, 13 or 14 digits (padded to 14). Every GS1 key
//! with a check digit (GTIN, SSCC, GLN, GRAI, GDTI, GSRN) has it verified; in a URN,
//! where the check digit is absent, it is computed. Serials, lots and asset references
//! are 1 to 20 (GIAI: 30 with the company prefix) characters of GS1's CSet 82, with
//! `%XX` escapes decoded.
//!
//! **Canonical form** ([`Identifier::canonical`]): the Digital Link URI on
//! `https://id.gs1.org`, with every character outside `A–Z a–z 0–9 - . _ ~` of a value
//! percent-encoded (upper-case hex). A URN and a Digital Link naming the same thing have
//! the same canonical form. (The URN cannot be the canonical form: a Digital Link does
//! not say where the company prefix ends.)

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}`: {reason}")]
pub struct IdError {
    /// The identifier as given (at most 120 characters of it).
    pub input: String,
    /// What is wrong, for a person.
    pub reason: String,
}

fn error(input: &str, reason: impl Into<String>) -> IdError {
    IdError { input: input.chars().take(120).collect(), reason: reason.into() }
}

/// A GS1 identifier, keys normalised (check digits included, GTINs 14 digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    /// A trade item instance (AI 01 + 21).
    Sgtin {
        /// GTIN-14.
        gtin: String,
        /// Serial number.
        serial: String,
    },
    /// A batch or lot of a trade item (AI 01 + 10).
    Lgtin {
        /// GTIN-14.
        gtin: String,
        /// Batch or lot number.
        lot: String,
    },
    /// A trade item class (AI 01 alone).
    Gtin {
        /// GTIN-14.
        gtin: String,
    },
    /// A logistic unit, SSCC-18 (AI 00).
    Sscc {
        /// SSCC-18.
        sscc: String,
    },
    /// A physical location (AI 414, with AI 254 when there is an extension).
    Sgln {
        /// GLN-13.
        gln: String,
        /// Extension; `None` for the URN extension `0`.
        extension: Option<String>,
    },
    /// A party (AI 417).
    Pgln {
        /// GLN-13.
        gln: String,
    },
    /// An individual asset (AI 8004): company prefix and asset reference.
    Giai {
        /// The whole GIAI.
        giai: String,
    },
    /// A returnable asset (AI 8003).
    Grai {
        /// `0` and the GRAI-13 (14 digits, check digit included).
        grai: String,
        /// Serial (may be empty).
        serial: String,
    },
    /// A document (AI 253).
    Gdti {
        /// GDTI-13 (check digit included).
        gdti: String,
        /// Serial (may be empty).
        serial: String,
    },
    /// A service relation (AI 8018).
    Gsrn {
        /// GSRN-18.
        gsrn: String,
    },
}

/// The GS1 mod-10 check digit of `digits` (ASCII digits, without the check digit).
pub fn check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 { d * 3 } else { d }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Checks that `key` is `len` digits whose last one is the check digit.
fn checked_key(input: &str, what: &str, key: &str, len: usize) -> Result<String, IdError> {
    if key.len() != len || !all_digits(key) {
        return Err(error(input, format!("{what} `{key}` must be {len} digits")));
    }
    let expected = check_digit(&key[..len - 1]);
    let found = key.as_bytes()[len - 1] - b'0';
    if expected != found {
        return Err(error(
            input,
            format!("{what} `{key}`: check digit {found} should be {expected}"),
        ));
    }
    Ok(key.to_owned())
}

/// Appends the check digit.
fn with_check_digit(digits: String) -> String {
    let check = check_digit(&digits);
    format!("{digits}{check}")
}

/// GS1 AI encodable character set 82.
fn is_cset82(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c)
}

/// Decodes `%XX` escapes and checks the result: 1..=`max` characters of CSet 82
/// (`min_empty`: may be empty).
fn value(
    input: &str,
    what: &str,
    raw: &str,
    max: usize,
    may_be_empty: bool,
) -> Result<String, IdError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
            let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(decoded) = decoded else {
                return Err(error(input, format!("{what}: bad %-escape")));
            };
            bytes.push(decoded);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| error(input, format!("{what}: not UTF-8")))?;
    if text.is_empty() && !may_be_empty {
        return Err(error(input, format!("{what} is empty")));
    }
    if text.chars().count() > max {
        return Err(error(input, format!("{what} `{text}` is longer than {max} characters")));
    }
    if let Some(c) = text.chars().find(|c| !is_cset82(*c)) {
        return Err(error(input, format!("{what} `{text}`: `{c}` is not in GS1 CSet 82")));
    }
    Ok(text)
}

/// Percent-encodes every character outside the URI unreserved set.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits an EPC URN body into exactly `n` dot-separated fields.
fn fields<'a>(input: &str, body: &'a str, n: usize) -> Result<Vec<&'a str>, IdError> {
    let parts: Vec<&str> = body.splitn(n, '.').collect();
    if parts.len() != n {
        return Err(error(input, format!("expected {n} fields separated by `.`")));
    }
    Ok(parts)
}

/// Company prefix and the reference that follows it: digits, 6..=12 digits of company
/// prefix, `total` digits together.
fn prefix_and_reference(
    input: &str,
    cp: &str,
    reference: &str,
    total: usize,
) -> Result<(), IdError> {
    if !all_digits(cp) || !(6..=12).contains(&cp.len()) {
        return Err(error(input, format!("company prefix `{cp}` must be 6 to 12 digits")));
    }
    if !reference.bytes().all(|b| b.is_ascii_digit()) || cp.len() + reference.len() != total {
        return Err(error(
            input,
            format!("company prefix and reference must be {total} digits together"),
        ));
    }
    Ok(())
}

impl Identifier {
    /// Parses an EPC URN or a GS1 Digital Link URI.
    pub fn parse(text: &str) -> Result<Identifier, IdError> {
        let text = text.trim();
        if let Some(body) = text.strip_prefix("urn:epc:") {
            Self::parse_urn(text, body)
        } else if text.starts_with("https://") || text.starts_with("http://") {
            Self::parse_digital_link(text)
        } else {
            Err(error(text, "not an EPC URN (urn:epc:…) or a GS1 Digital Link URI (https://…)"))
        }
    }

    fn parse_urn(input: &str, body: &str) -> Result<Identifier, IdError> {
        let (scheme, body) = body
            .split_once(':')
            .and_then(|(kind, rest)| {
                rest.split_once(':').map(|(scheme, body)| ((kind, scheme), body))
            })
            .ok_or_else(|| error(input, "expected urn:epc:id|class|idpat:SCHEME:…"))?;
        match scheme {
            ("id", "sgtin") | ("class", "lgtin") | ("idpat", "sgtin") => {
                let f = fields(input, body, 3)?;
                if scheme.0 == "idpat" && (f[1] == "*" || f[2] != "*") {
                    return Err(error(input, "only the class pattern CP.IR.* is supported"));
                }
                prefix_and_reference(input, f[0], f[1], 13)?;
                if f[1].is_empty() {
                    return Err(error(input, "item reference is empty"));
                }
                let gtin = with_check_digit(format!("{}{}{}", &f[1][..1], f[0], &f[1][1..]));
                match scheme.0 {
                    "id" => Ok(Identifier::Sgtin {
                        gtin,
                        serial: value(input, "serial", f[2], 20, false)?,
                    }),
                    "class" => {
                        Ok(Identifier::Lgtin { gtin, lot: value(input, "lot", f[2], 20, false)? })
                    }
                    _ => Ok(Identifier::Gtin { gtin }),
                }
            }
            ("id", "sscc") => {
                let f = fields(input, body, 2)?;
                prefix_and_reference(input, f[0], f[1], 17)?;
                if f[1].is_empty() {
                    return Err(error(input, "serial reference is empty"));
                }
                let sscc = with_check_digit(format!("{}{}{}", &f[1][..1], f[0], &f[1][1..]));
                Ok(Identifier::Sscc { sscc })
            }
            ("id", "sgln") => {
                let f = fields(input, body, 3)?;
                prefix_and_reference(input, f[0], f[1], 12)?;
                let gln = with_check_digit(format!("{}{}", f[0], f[1]));
                let extension = match f[2] {
                    "0" => None,
                    other => Some(value(input, "extension", other, 20, false)?),
                };
                Ok(Identifier::Sgln { gln, extension })
            }
            ("id", "pgln") => {
                let f = fields(input, body, 2)?;
                prefix_and_reference(input, f[0], f[1], 12)?;
                Ok(Identifier::Pgln { gln: with_check_digit(format!("{}{}", f[0], f[1])) })
            }
            ("id", "giai") => {
                let f = fields(input, body, 2)?;
                if !all_digits(f[0]) || !(6..=12).contains(&f[0].len()) {
                    return Err(error(input, "company prefix must be 6 to 12 digits"));
                }
                let asset = value(input, "asset reference", f[1], 30 - f[0].len(), false)?;
                Ok(Identifier::Giai { giai: format!("{}{asset}", f[0]) })
            }
            ("id", "grai") => {
                let f = fields(input, body, 3)?;
                prefix_and_reference(input, f[0], f[1], 12)?;
                let grai = format!("0{}", with_check_digit(format!("{}{}", f[0], f[1])));
                Ok(Identifier::Grai { grai, serial: value(input, "serial", f[2], 16, true)? })
            }
            ("id", "gdti") => {
                let f = fields(input, body, 3)?;
                prefix_and_reference(input, f[0], f[1], 12)?;
                let gdti = with_check_digit(format!("{}{}", f[0], f[1]));
                Ok(Identifier::Gdti { gdti, serial: value(input, "serial", f[2], 17, true)? })
            }
            ("id", "gsrn") => {
                let f = fields(input, body, 2)?;
                prefix_and_reference(input, f[0], f[1], 17)?;
                Ok(Identifier::Gsrn { gsrn: with_check_digit(format!("{}{}", f[0], f[1])) })
            }
            (kind, scheme) => Err(error(input, format!("unsupported EPC scheme {kind}:{scheme}"))),
        }
    }

    fn parse_digital_link(input: &str) -> Result<Identifier, IdError> {
        let after_scheme = input.split_once("://").map_or("", |(_, rest)| rest);
        let without_query = after_scheme.split(['?', '#']).next().unwrap_or("");
        let mut segments = without_query.split('/');
        let domain = segments.next().unwrap_or("");
        if domain.is_empty() {
            return Err(error(input, "no domain"));
        }
        let segments: Vec<&str> = segments.filter(|s| !s.is_empty()).collect();
        const PRIMARY: [&str; 8] = ["01", "00", "414", "417", "8003", "8004", "253", "8018"];
        // The primary key is the first known primary AI followed by a value; a custom path
        // prefix may come before it.
        let Some(start) =
            (0..segments.len().saturating_sub(1)).find(|&i| PRIMARY.contains(&segments[i]))
        else {
            return Err(error(
                input,
                "no GS1 primary key (01, 00, 414, 417, 8003, 8004, 253, 8018) in the path",
            ));
        };
        let (ai, key) = (segments[start], segments[start + 1]);
        let rest = &segments[start + 2..];
        if !rest.len().is_multiple_of(2) {
            return Err(error(input, "qualifiers come in AI/value pairs"));
        }
        let qualifiers: Vec<(&str, &str)> = rest.chunks(2).map(|pair| (pair[0], pair[1])).collect();
        let allowed: &[&str] = match ai {
            "01" => &["10", "21"],
            "414" => &["254"],
            _ => &[],
        };
        let mut last_position = None;
        for (q, _) in &qualifiers {
            let Some(position) = allowed.iter().position(|a| a == q) else {
                return Err(error(
                    input,
                    format!("AI {q} is not a supported qualifier of AI {ai}"),
                ));
            };
            if last_position.is_some_and(|last| position <= last) {
                return Err(error(input, "qualifiers out of order or repeated"));
            }
            last_position = Some(position);
        }
        let qualifier = |name: &str| qualifiers.iter().find(|(q, _)| *q == name).map(|(_, v)| *v);
        match ai {
            "01" => {
                if !all_digits(key) || ![8, 12, 13, 14].contains(&key.len()) {
                    return Err(error(
                        input,
                        format!("GTIN `{key}` must be 8, 12, 13 or 14 digits"),
                    ));
                }
                let gtin = checked_key(input, "GTIN", &format!("{key:0>14}"), 14)?;
                match (qualifier("10"), qualifier("21")) {
                    (_, Some(serial)) => Ok(Identifier::Sgtin {
                        gtin,
                        serial: value(input, "serial", serial, 20, false)?,
                    }),
                    (Some(lot), None) => {
                        Ok(Identifier::Lgtin { gtin, lot: value(input, "lot", lot, 20, false)? })
                    }
                    (None, None) => Ok(Identifier::Gtin { gtin }),
                }
            }
            "00" => Ok(Identifier::Sscc { sscc: checked_key(input, "SSCC", key, 18)? }),
            "414" => {
                let gln = checked_key(input, "GLN", key, 13)?;
                let extension = match qualifier("254") {
                    Some(ext) => Some(value(input, "extension", ext, 20, false)?),
                    None => None,
                };
                Ok(Identifier::Sgln { gln, extension })
            }
            "417" => Ok(Identifier::Pgln { gln: checked_key(input, "GLN", key, 13)? }),
            "8004" => {
                let giai = value(input, "GIAI", key, 30, false)?;
                if giai.len() < 7 || !all_digits(&giai[..6]) {
                    return Err(error(input, "GIAI must start with a company prefix"));
                }
                Ok(Identifier::Giai { giai })
            }
            "8003" => {
                let full = value(input, "GRAI", key, 30, false)?;
                let (digits, serial) = full.split_at(full.len().min(14));
                if digits.len() != 14 || !digits.starts_with('0') {
                    return Err(error(input, "GRAI must be 0, 13 digits and an optional serial"));
                }
                let grai = format!("0{}", checked_key(input, "GRAI", &digits[1..], 13)?);
                Ok(Identifier::Grai { grai, serial: serial.to_owned() })
            }
            "253" => {
                let full = value(input, "GDTI", key, 30, false)?;
                let (digits, serial) = full.split_at(full.len().min(13));
                let gdti = checked_key(input, "GDTI", digits, 13)?;
                Ok(Identifier::Gdti { gdti, serial: serial.to_owned() })
            }
            "8018" => Ok(Identifier::Gsrn { gsrn: checked_key(input, "GSRN", key, 18)? }),
            _ => unreachable!("primary AIs are listed above"),
        }
    }

    /// The canonical form: the Digital Link URI on `https://id.gs1.org`.
    pub fn canonical(&self) -> String {
        let path = match self {
            Identifier::Sgtin { gtin, serial } => format!("01/{gtin}/21/{}", encode(serial)),
            Identifier::Lgtin { gtin, lot } => format!("01/{gtin}/10/{}", encode(lot)),
            Identifier::Gtin { gtin } => format!("01/{gtin}"),
            Identifier::Sscc { sscc } => format!("00/{sscc}"),
            Identifier::Sgln { gln, extension: None } => format!("414/{gln}"),
            Identifier::Sgln { gln, extension: Some(ext) } => {
                format!("414/{gln}/254/{}", encode(ext))
            }
            Identifier::Pgln { gln } => format!("417/{gln}"),
            Identifier::Giai { giai } => format!("8004/{}", encode(giai)),
            Identifier::Grai { grai, serial } => format!("8003/{grai}{}", encode(serial)),
            Identifier::Gdti { gdti, serial } => format!("253/{gdti}{}", encode(serial)),
            Identifier::Gsrn { gsrn } => format!("8018/{gsrn}"),
        };
        format!("https://id.gs1.org/{path}")
    }

    /// The GTIN-14 of a trade item identifier (what routes it to a category).
    pub fn gtin(&self) -> Option<&str> {
        match self {
            Identifier::Sgtin { gtin, .. }
            | Identifier::Lgtin { gtin, .. }
            | Identifier::Gtin { gtin } => Some(gtin),
            _ => None,
        }
    }

    /// The digits that begin with the GS1 company prefix (after an indicator or
    /// extension digit), for routing a key that has no GTIN (an SSCC pallet, a GLN
    /// place) by its company: `None` for a GIAI whose first 4 characters are not digits.
    pub fn company_digits(&self) -> Option<&str> {
        let digits = match self {
            Identifier::Sgtin { gtin, .. }
            | Identifier::Lgtin { gtin, .. }
            | Identifier::Gtin { gtin } => &gtin[1..13],
            Identifier::Sscc { sscc } => &sscc[1..17],
            Identifier::Sgln { gln, .. } | Identifier::Pgln { gln } => &gln[..12],
            Identifier::Grai { grai, .. } => &grai[1..13],
            Identifier::Gdti { gdti, .. } => &gdti[..12],
            Identifier::Gsrn { gsrn } => &gsrn[..17],
            Identifier::Giai { giai } => {
                let end = giai.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(giai.len());
                &giai[..end.min(12)]
            }
        };
        (digits.len() >= 4).then_some(digits)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The canonical form of `text` (an EPC URN or a Digital Link).
pub fn canonicalize(text: &str) -> Result<String, IdError> {
    Identifier::parse(text).map(|id| id.canonical())
}
