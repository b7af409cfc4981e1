//! A minimal reader of NumPy `.npy` files (format versions 1–3): C-order
//! little-endian `<f2` (half) or `<f4` arrays, read into f32.

use std::fmt;

/// An n-dimensional array of f32 in C order.
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "npy: {}", self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(why: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(why.into()))
}

/// The value of `key` in the header dict, as its literal text.
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str, NpyError> {
    let quoted = format!("'{key}':");
    let Some(at) = header.find(&quoted) else {
        return err(format!("header has no {key}"));
    };
    Ok(header[at + quoted.len()..].trim_start())
}

/// Parses `.npy` bytes.
pub fn parse(bytes: &[u8]) -> Result<Array, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return err("not an .npy file");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return err(format!("unsupported version {v}")),
    };
    let Some(header) = bytes.get(start..start + header_len) else {
        return err("truncated header");
    };
    let header = std::str::from_utf8(header).map_err(|_| NpyError("header not UTF-8".into()))?;
    let descr = field(header, "descr")?;
    let width = if descr.starts_with("'<f2'") {
        2
    } else if descr.starts_with("'<f4'") {
        4
    } else {
        return err(format!("unsupported dtype {descr:.8}"));
    };
    if !field(header, "fortran_order")?.starts_with("False") {
        return err("Fortran order is not supported");
    }
    let shape_text = field(header, "shape")?;
    let Some(close) = shape_text.find(')') else {
        return err("bad shape");
    };
    let shape: Vec<usize> = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| NpyError(format!("bad shape entry {s}")))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or(NpyError("shape overflows".into()))?;
    let body = &bytes[start + header_len..];
    if body.len() != count * width {
        return err(format!("{} data bytes for {count} values", body.len()));
    }
    let data = if width == 2 {
        body.chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    Ok(Array { shape, data })
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// An .npy v1 file with `header` padded as NumPy pads it, then `body`.
    fn file(header: &str, body: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_f4_and_f2() {
        let body: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0, 0.0, -0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &body,
        ))
        .unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, [1.5, -2.0, 0.25, 8.0, 0.0, -0.0]);
        // f16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF.
        let body = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B];
        let a = parse(&file(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }",
            &body,
        ))
        .unwrap();
        assert_eq!(a.shape, [3]);
        assert_eq!(a.data, [1.0, -2.0, 65504.0]);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        assert!(parse(&file(h, &[0; 7])).is_err()); // short body
        assert!(parse(&file(h, &[0; 8])).is_ok());
        assert!(parse(&file(&h.replace("<f4", "<f8"), &[0; 16])).is_err());
        assert!(parse(&file(&h.replace("False", "True"), &[0; 8])).is_err());
        assert!(parse(b"\x93NUMPX\x01\x00\x00\x00").is_err());
        let mut f = file(h, &[0; 8]);
        f.truncate(20);
        assert!(parse(&f).is_err());
    }
}
