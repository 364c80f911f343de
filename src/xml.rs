//! The one way keyward parses XML (SOAP requests, delegated-authentication answers): roxmltree
//! with document type declarations refused (no entities, so no billion laughs and no external
//! entities), a bound on the number of nodes, and a bound on element nesting checked *before*
//! roxmltree runs — its parser recurses per nesting level, so a few kilobytes of `<a><a><a>…`
//! would otherwise overflow the stack and abort the whole process.

/// Real SOAP envelopes nest about eight levels deep.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("XML with a document type declaration (DOCTYPE/ENTITY) is not accepted")]
    Dtd,
    #[error("the XML nests elements more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("the XML has more than {0} nodes")]
    TooManyNodes(u32),
    #[error("not well-formed XML: {0}")]
    Malformed(String),
}

/// Parses `text`, refusing DTDs, nesting deeper than [`MAX_DEPTH`] and more than
/// `nodes_limit` nodes.
pub fn parse(text: &str, nodes_limit: u32) -> Result<roxmltree::Document<'_>, XmlError> {
    // roxmltree refuses DTDs with content but lets an empty `<!DOCTYPE x>` through; keyward
    // refuses every document type declaration.
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(XmlError::Dtd);
    }
    if exceeds_depth(text.as_bytes(), MAX_DEPTH) {
        return Err(XmlError::TooDeep);
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit,
    };
    roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::Dtd,
        roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes(nodes_limit),
        other => XmlError::Malformed(other.to_string()),
    })
}

/// Does the element nesting go deeper than `limit`? One forward pass, no allocation, stopping
/// as soon as the answer is yes. It may count too deep (it does not check that end tags match),
/// never too shallow: quoted attribute values are skipped (`<a b="/>">` opens an element), a
/// start tag counts one level until its end tag or `/>`, and a tag cut short by a `<` or the end
/// of the input still counts.
pub fn exceeds_depth(text: &[u8], limit: usize) -> bool {
    let n = text.len();
    let find = |from: usize, needle: &[u8]| {
        text.get(from..)
            .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
            .map_or(n, |p| from + p + needle.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < n {
        if text[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i += 2;
        } else if rest.starts_with(b"<!") {
            i += 2;
        } else {
            depth += 1;
            if depth > limit {
                return true;
            }
            // The start tag runs to its `>`, skipping quoted values; `/>` closes it at once.
            let mut j = i + 1;
            let mut quote = None;
            let mut last = 0u8;
            while j < n {
                let b = text[j];
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b'>' || b == b'<' => break,
                    None => {}
                }
                if quote.is_none() && !b.is_ascii_whitespace() {
                    last = b;
                }
                j += 1;
            }
            if j < n && text[j] == b'>' {
                if last == b'/' {
                    depth -= 1;
                }
                j += 1;
            }
            i = j;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        (0..100)
            .find(|&l| !exceeds_depth(text.as_bytes(), l))
            .unwrap()
    }

    #[test]
    fn depth_is_bounded_before_parsing() {
        assert_eq!(depth("<a/>"), 1);
        assert_eq!(depth("<a><b/><c><d></d></c></a>"), 3);
        assert_eq!(
            depth("<?xml version=\"1.0\"?><!-- <x><y> --><a>text</a>"),
            1
        );
        assert_eq!(depth("<a x='1' y=\"2\" /><b><![CDATA[<c><d>]]></b>"), 1);
        // A `>` or `/>` inside a quoted value neither ends the tag nor closes the element.
        assert_eq!(depth("<a b=\"/>\"><a b='>'><c/></a></a>"), 3);
        let quoted = format!("{}{}", "<a b=\"/>\">".repeat(5000), "</a>".repeat(5000));
        assert_eq!(parse(&quoted, 1_000_000).unwrap_err(), XmlError::TooDeep);
        // Linear: a megabyte of `<`, or of unterminated tags, is answered at once.
        assert!(exceeds_depth(&vec![b'<'; 1 << 20], MAX_DEPTH));
        assert!(exceeds_depth(
            "<a b=\"".repeat(1 << 18).as_bytes(),
            MAX_DEPTH
        ));
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert_eq!(parse(&deep, 1_000_000).unwrap_err(), XmlError::TooDeep);
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok, 10_000).is_ok());
        // Unclosed tags count too.
        assert_eq!(
            parse(&"<a>".repeat(1000), 10_000).unwrap_err(),
            XmlError::TooDeep
        );
    }

    #[test]
    fn dtds_and_node_floods_are_refused() {
        assert_eq!(parse("<!DOCTYPE x><x/>", 100).unwrap_err(), XmlError::Dtd);
        let wide = format!("<r>{}</r>", "<a/>".repeat(200));
        assert_eq!(parse(&wide, 100).unwrap_err(), XmlError::TooManyNodes(100));
        assert!(matches!(
            parse("<a>", 100).unwrap_err(),
            XmlError::Malformed(_)
        ));
    }
}
