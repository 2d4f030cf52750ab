//! COPY's binary format, as PostgreSQL reads and writes it (asyncpg's
//! `copy_records_to_table`, psycopg's binary copy).
//!
//! The data is a signature (`PGCOPY\n\377\r\n\0`), a 32-bit flags word and a
//! header extension (its length, then that many bytes), then one tuple per
//! row: a 16-bit field count and, per field, a 32-bit length (-1 for NULL)
//! and the value in its type's binary send format; a field count of -1 ends
//! the data. All integers are big-endian.
//!
//! Incoming values are turned into the text that COPY's text format would
//! carry for them, so that both formats go through the same checks and
//! casts into the table (`Database::copy_from`): one place decides what a
//! column accepts. Tuples are numbered from 1 for error messages, as
//! PostgreSQL's CONTEXT does.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::datatypes::Field;
use pgwire::api::Type;

use crate::database::CopyRecord as Record;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Where PostgreSQL's binary dates and times count from.
fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// The header of binary COPY output.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// One tuple of binary COPY output, from values already in binary send
/// format (`None` for NULL).
pub fn encode_row(fields: &[Option<&[u8]>], out: &mut Vec<u8>) {
    out.extend_from_slice(&(fields.len() as i16).to_be_bytes());
    for field in fields {
        match field {
            Some(bytes) => {
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
}

/// The end of binary COPY output.
pub fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// Reads big-endian values off the front of the data.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
}

/// The records of binary COPY data for columns `fields` (in data order),
/// each value as COPY text. An error names its tuple.
pub fn decode(data: &[u8], fields: &[Field]) -> Result<Vec<Record>, (usize, String)> {
    let types: Vec<Type> = fields
        .iter()
        .map(|f| super::params::pg_type(f).unwrap_or(Type::TEXT))
        .collect();
    let mut reader = Reader { data };
    let bad_header = |what: &str| (1, format!("invalid COPY file header ({what})"));
    if reader.take(SIGNATURE.len()) != Some(SIGNATURE) {
        return Err((1, "COPY file signature not recognized".into()));
    }
    let flags = reader.i32().ok_or_else(|| bad_header("missing flags"))?;
    if flags & (1 << 16) != 0 {
        return Err((1, "COPY with OIDs is not supported".into()));
    }
    let extension = reader.i32().ok_or_else(|| bad_header("missing length"))?;
    reader
        .take(usize::try_from(extension).map_err(|_| bad_header("wrong length"))?)
        .ok_or_else(|| bad_header("wrong length"))?;
    let mut records = Vec::new();
    loop {
        let tuple = records.len() + 1;
        let eof = || (tuple, "unexpected EOF in COPY data".to_string());
        // PostgreSQL also takes data that ends after a whole tuple without
        // the trailer.
        if reader.data.is_empty() {
            break;
        }
        let count = reader.i16().ok_or_else(eof)?;
        if count == -1 {
            break;
        }
        if count as usize != fields.len() {
            return Err((
                tuple,
                format!("row field count is {count}, expected {}", fields.len()),
            ));
        }
        let mut values = Vec::with_capacity(fields.len());
        for ty in &types {
            let length = reader.i32().ok_or_else(eof)?;
            if length < 0 {
                values.push(None);
                continue;
            }
            let bytes = reader.take(length as usize).ok_or_else(eof)?;
            values.push(Some(text_of(ty, bytes).map_err(|e| (tuple, e))?));
        }
        records.push((tuple, values));
    }
    Ok(records)
}

/// `bytes` as exactly `N` bytes.
fn exact<const N: usize>(bytes: &[u8], ty: &Type) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("incorrect binary data format for type {}", ty.name()))
}

/// A value in `ty`'s binary send format, as COPY text.
fn text_of(ty: &Type, bytes: &[u8]) -> Result<String, String> {
    Ok(match *ty {
        Type::BOOL => (exact::<1>(bytes, ty)?[0] != 0).to_string(),
        Type::INT2 => i16::from_be_bytes(exact(bytes, ty)?).to_string(),
        Type::INT4 => i32::from_be_bytes(exact(bytes, ty)?).to_string(),
        Type::INT8 => i64::from_be_bytes(exact(bytes, ty)?).to_string(),
        Type::FLOAT4 => f32::from_be_bytes(exact(bytes, ty)?).to_string(),
        Type::FLOAT8 => f64::from_be_bytes(exact(bytes, ty)?).to_string(),
        Type::NUMERIC => numeric_text(bytes)
            .ok_or_else(|| format!("incorrect binary data format for type {}", ty.name()))?,
        Type::DATE => {
            let days = i32::from_be_bytes(exact(bytes, ty)?);
            epoch()
                .date()
                .checked_add_signed(Duration::days(days.into()))
                .ok_or_else(|| "date out of range".to_string())?
                .format("%Y-%m-%d")
                .to_string()
        }
        Type::TIME => {
            let micros = i64::from_be_bytes(exact(bytes, ty)?);
            NaiveTime::MIN
                .overflowing_add_signed(Duration::microseconds(micros))
                .0
                .format("%H:%M:%S%.6f")
                .to_string()
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(exact(bytes, ty)?);
            let at = epoch()
                .checked_add_signed(Duration::microseconds(micros))
                .ok_or_else(|| "timestamp out of range".to_string())?;
            if *ty == Type::TIMESTAMPTZ {
                DateTime::<chrono::Utc>::from_naive_utc_and_offset(at, chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string()
            } else {
                at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
            }
        }
        Type::INTERVAL => {
            let all: [u8; 16] = exact(bytes, ty)?;
            let micros = i64::from_be_bytes(exact(&all[0..8], ty)?);
            let days = i32::from_be_bytes(exact(&all[8..12], ty)?);
            let months = i32::from_be_bytes(exact(&all[12..16], ty)?);
            format!("{months} months {days} days {micros} microseconds")
        }
        Type::BYTEA => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("\\x{hex}")
        }
        Type::UUID => {
            let hex: String = exact::<16>(bytes, ty)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        }
        Type::JSONB => match bytes.split_first() {
            Some((1, text)) => utf8(text)?,
            _ => return Err("unsupported jsonb version number".into()),
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
            utf8(bytes)?
        }
        _ => {
            return Err(format!(
                "COPY BINARY of a column of type {} is not supported",
                ty.name()
            ));
        }
    })
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())
}

/// PostgreSQL's binary numeric: digit count, weight (of the first digit,
/// in powers of 10,000), sign, display scale, then base-10,000 digits.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        bytes
            .get(i * 2..i * 2 + 2)?
            .try_into()
            .ok()
            .map(i16::from_be_bytes)
    };
    let count = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let scale = usize::try_from(word(3)?).ok()?;
    if bytes.len() != 8 + count * 2 {
        return None;
    }
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let digits: Vec<u16> = (0..count)
        .map(|i| word(4 + i).map(|d| d as u16))
        .collect::<Option<_>>()?;
    // The integer part: base-10,000 digits at weights weight..=0.
    let mut integer = String::new();
    for w in (0..=weight).rev() {
        let d = usize::try_from(weight - w)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0);
        if integer.is_empty() {
            if d != 0 {
                integer = d.to_string();
            }
        } else {
            integer.push_str(&format!("{d:04}"));
        }
    }
    if integer.is_empty() {
        integer.push('0');
    }
    // The fraction: weights -1, -2, ... as four decimal places each.
    let mut fraction = String::new();
    let mut w = -1;
    while fraction.len() < scale {
        let d = usize::try_from(weight - w)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0);
        fraction.push_str(&format!("{d:04}"));
        w -= 1;
    }
    fraction.truncate(scale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if scale > 0 {
        format!("{sign}{integer}.{fraction}")
    } else {
        format!("{sign}{integer}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn numeric(count: i16, weight: i16, sign: u16, scale: i16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in [count, weight, sign as i16, scale] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_read_as_postgresql_sends_them() {
        // 12345.678 is digits 1, 2345, 6780 at weight 1, scale 3.
        let cases = [
            (numeric(3, 1, 0, 3, &[1, 2345, 6780]), "12345.678"),
            (numeric(1, 0, 0x4000, 2, &[7]), "-7.00"),
            (numeric(1, -1, 0, 4, &[25]), "0.0025"),
            (numeric(0, 0, 0, 0, &[]), "0"),
            (numeric(1, 2, 0, 0, &[3]), "300000000"),
            (numeric(0, 0, 0xC000, 0, &[]), "NaN"),
        ];
        for (bytes, text) in cases {
            assert_eq!(numeric_text(&bytes).as_deref(), Some(text));
        }
        assert_eq!(numeric_text(&numeric(2, 0, 0, 0, &[1])), None);
    }

    #[test]
    fn a_tuple_stream_round_trips() {
        let fields = [
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Date32, true),
        ];
        let mut data = Vec::new();
        header(&mut data);
        let days = 366i32.to_be_bytes();
        encode_row(
            &[Some(&7i32.to_be_bytes()), Some(b"ann"), Some(&days)],
            &mut data,
        );
        encode_row(&[Some(&(-1i32).to_be_bytes()), None, None], &mut data);
        trailer(&mut data);
        let records = decode(&data, &fields).unwrap();
        assert_eq!(
            records,
            vec![
                (
                    1,
                    vec![
                        Some("7".to_string()),
                        Some("ann".to_string()),
                        Some("2001-01-01".to_string())
                    ]
                ),
                (2, vec![Some("-1".to_string()), None, None]),
            ]
        );
    }

    #[test]
    fn broken_data_names_its_tuple() {
        let fields = [Field::new("id", DataType::Int32, true)];
        assert_eq!(decode(b"PGCOPY", &fields).unwrap_err().0, 1);
        let mut data = Vec::new();
        header(&mut data);
        encode_row(&[Some(&1i32.to_be_bytes())], &mut data);
        encode_row(&[Some(&[1, 2])], &mut data);
        trailer(&mut data);
        let (tuple, message) = decode(&data, &fields).unwrap_err();
        assert_eq!(tuple, 2);
        assert!(message.contains("binary data format"), "{message}");
        let mut short = Vec::new();
        header(&mut short);
        encode_row(&[Some(&1i32.to_be_bytes())], &mut short);
        assert_eq!(decode(&short, &fields).unwrap().len(), 1, "no trailer");
        short.extend_from_slice(&1i16.to_be_bytes());
        assert!(decode(&short, &fields).unwrap_err().1.contains("EOF"));
    }
}
