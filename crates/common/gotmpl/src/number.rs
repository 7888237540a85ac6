//! Go's syntax for number literals (`strconv.ParseInt`/`ParseUint` with base 0, and
//! `ParseFloat`'s accepted forms), as the parser classifies constants.

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IntError {
    Syntax,
    Range,
}

/// Go's `strconv.ParseUint(s, 0, 64)`: base prefixes, leading-0 octal, `_` separators.
pub(crate) fn parse_uint(s: &str) -> Result<u64, IntError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(IntError::Syntax);
    }
    let (base, digits): (u64, &[u8]) = match b {
        [b'0', p, ..] if b.len() >= 3 && matches!(p, b'b' | b'B') => (2, &b[2..]),
        [b'0', p, ..] if b.len() >= 3 && matches!(p, b'o' | b'O') => (8, &b[2..]),
        [b'0', p, ..] if b.len() >= 3 && matches!(p, b'x' | b'X') => (16, &b[2..]),
        [b'0', ..] => (8, &b[1..]),
        _ => (10, b),
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return Err(IntError::Syntax),
        };
        if u64::from(d) >= base {
            return Err(IntError::Syntax);
        }
        n = n
            .checked_mul(base)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(IntError::Range)?;
    }
    if underscores && !underscore_ok(s) {
        return Err(IntError::Syntax);
    }
    Ok(n)
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub(crate) fn parse_int(s: &str) -> Result<i64, IntError> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(digits)?;
    if negative {
        if u > i64::MIN.unsigned_abs() {
            return Err(IntError::Range);
        }
        Ok(0i64.wrapping_sub_unsigned(u))
    } else {
        i64::try_from(u).map_err(|_| IntError::Range)
    }
}

/// Go's rule for `_` in number literals: only between digits or after a base prefix.
fn underscore_ok(s: &str) -> bool {
    let mut b = s.as_bytes();
    if let [b'+' | b'-', rest @ ..] = b {
        b = rest;
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &b[i..] {
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Whether `s` is a Go floating-point literal (as `strconv.ParseFloat` accepts it).
pub(crate) fn is_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (hex, mantissa_and_exp) = match body.get(..2) {
        Some("0x" | "0X") => (true, &body[2..]),
        _ => (false, body),
    };
    let exp_markers: &[char] = if hex { &['p', 'P'] } else { &['e', 'E'] };
    let (mantissa, exponent) = match mantissa_and_exp.find(exp_markers) {
        Some(i) => (&mantissa_and_exp[..i], Some(&mantissa_and_exp[i + 1..])),
        None => (mantissa_and_exp, None),
    };
    let digit = |c: char| {
        if hex {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        }
    };
    let mantissa_ok = mantissa.chars().filter(|c| *c == '.').count() <= 1
        && mantissa.chars().any(digit)
        && mantissa.chars().all(|c| digit(c) || c == '.' || c == '_');
    let exponent_ok = match exponent {
        None => !hex,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            e.chars().any(|c| c.is_ascii_digit())
                && e.chars().all(|c| c.is_ascii_digit() || c == '_')
        }
    };
    mantissa_ok && exponent_ok && (!s.contains('_') || underscore_ok(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_integer_syntax() {
        assert_eq!(parse_int("0x_1F"), Ok(31));
        assert_eq!(parse_int("0377"), Ok(255));
        assert_eq!(parse_int("0o17"), Ok(15));
        assert_eq!(parse_int("-0b101"), Ok(-5));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(IntError::Range));
        assert_eq!(parse_uint("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_int("1__0"), Err(IntError::Syntax));
        assert_eq!(parse_int("089"), Err(IntError::Syntax));
        assert_eq!(parse_int("0x"), Err(IntError::Syntax));
        assert_eq!(parse_int("+"), Err(IntError::Syntax));
    }

    #[test]
    fn go_float_syntax() {
        assert!(is_float("1.5"));
        assert!(is_float("1e9"));
        assert!(is_float("0x1p-2"));
        assert!(is_float("089"));
        assert!(is_float("0_0_1_2_3.4"));
        assert!(!is_float("0x1.8"));
        assert!(!is_float("."));
        assert!(!is_float("-"));
        assert!(!is_float("1e"));
    }
}
