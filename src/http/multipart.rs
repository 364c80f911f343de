//! `multipart/form-data` bodies (RFC 7578) of text fields only: the Salesforce CLI posts its
//! device-flow requests to the token endpoint this way (docs/design/oauth-clients.md), where
//! every other client form-encodes them. Files are refused; the body is bounded before it
//! gets here.

/// Why a body is not a form of text fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the multipart body has no boundary parameter")]
    NoBoundary,
    #[error("the multipart body is malformed")]
    Malformed,
    #[error("a multipart field must be text, not a file")]
    File,
}

/// The boundary of a `multipart/form-data` content type, or None for any other type.
pub fn boundary(content_type: &str) -> Option<Result<String, MultipartError>> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| (1..=70).contains(&b.len()));
    Some(boundary.ok_or(MultipartError::NoBoundary))
}

/// The fields of `body`, in order: (name, value).
pub fn fields(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, MultipartError> {
    // A delimiter opens a line; the first may open the body instead.
    let line_delimiter = format!("\r\n--{boundary}");
    let delimiter = &line_delimiter[2..];
    let mut rest = match body.strip_prefix(delimiter.as_bytes()) {
        Some(rest) => rest,
        None => after(body, line_delimiter.as_bytes()).ok_or(MultipartError::Malformed)?,
    };
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or(MultipartError::Malformed)?;
        let end = find(rest, line_delimiter.as_bytes()).ok_or(MultipartError::Malformed)?;
        let (part, next) = rest.split_at(end);
        rest = &next[line_delimiter.len()..];
        let head_end = find(part, b"\r\n\r\n").ok_or(MultipartError::Malformed)?;
        let head = std::str::from_utf8(&part[..head_end]).map_err(|_| MultipartError::Malformed)?;
        let name = field_name(head)?;
        let value =
            std::str::from_utf8(&part[head_end + 4..]).map_err(|_| MultipartError::Malformed)?;
        out.push((name, value.to_string()));
    }
}

/// The `name` of a part's `Content-Disposition: form-data` header.
fn field_name(head: &str) -> Result<String, MultipartError> {
    let disposition = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, v)| v)
        .ok_or(MultipartError::Malformed)?;
    let mut params = disposition.split(';');
    if !params
        .next()
        .is_some_and(|k| k.trim().eq_ignore_ascii_case("form-data"))
    {
        return Err(MultipartError::Malformed);
    }
    let mut name = None;
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(v.trim().trim_matches('"').to_string()),
            "filename" | "filename*" => return Err(MultipartError::File),
            _ => {}
        }
    }
    name.filter(|n| !n.is_empty())
        .ok_or(MultipartError::Malformed)
}

/// In linear time, whatever the body (a naive search is quadratic in the boundary's length).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

fn after<'a>(haystack: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    find(haystack, needle).map(|at| &haystack[at + needle.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &str)], boundary: &str) -> Vec<u8> {
        let mut b = String::from("preamble\r\n");
        for (k, v) in parts {
            b.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        b.push_str(&format!("--{boundary}--\r\n"));
        b.into_bytes()
    }

    #[test]
    fn text_fields_as_the_salesforce_cli_sends_them() {
        let ct = "multipart/form-data; boundary=--------------------------123456";
        let b = boundary(ct).unwrap().unwrap();
        assert_eq!(b, "--------------------------123456");
        let raw = body(
            &[
                ("response_type", "device_code"),
                ("client_id", "PlatformCLI"),
                ("scope", "refresh_token web api"),
                ("empty", ""),
            ],
            &b,
        );
        assert_eq!(
            fields(&raw, &b).unwrap(),
            [
                ("response_type".to_string(), "device_code".to_string()),
                ("client_id".into(), "PlatformCLI".into()),
                ("scope".into(), "refresh_token web api".into()),
                ("empty".into(), String::new()),
            ]
        );
        // A value may hold CRLF and dashes; a quoted boundary; no fields at all.
        let raw = body(&[("a", "x\r\n--y")], "q");
        assert_eq!(
            fields(&raw, "q").unwrap(),
            [("a".to_string(), "x\r\n--y".to_string())]
        );
        assert_eq!(
            boundary("Multipart/Form-Data; boundary=\"q\"")
                .unwrap()
                .unwrap(),
            "q"
        );
        assert!(fields(b"--q--\r\n", "q").unwrap().is_empty());
        // A delimiter must open a line: inside the preamble it is part of the preamble.
        let raw = b"x--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--q--";
        assert!(fields(raw, "q").unwrap().is_empty());
    }

    #[test]
    fn other_types_files_and_broken_bodies_are_told_apart() {
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(
            boundary("multipart/form-data"),
            Some(Err(MultipartError::NoBoundary))
        );
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))),
            Some(Err(MultipartError::NoBoundary))
        );
        let file = b"--q\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nx\r\n--q--";
        assert_eq!(fields(file, "q"), Err(MultipartError::File));
        for bad in [
            &b""[..],
            b"no delimiter",
            b"--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            b"--q\r\nno header end\r\n--q--",
            b"--q\r\nContent-Type: text/plain\r\n\r\nx\r\n--q--",
            b"--q\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--q--",
            b"--q\r\nContent-Disposition: form-data\r\n\r\nx\r\n--q--",
            b"--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\r\n--q--",
        ] {
            assert_eq!(
                fields(bad, "q"),
                Err(MultipartError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
