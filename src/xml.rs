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
    if max_depth(text.as_bytes()) > MAX_DEPTH {
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

/// An upper bound on the element nesting depth, in one pass without allocation. It may count
/// too deep (a `>` inside an attribute value hides a `/>`), never too shallow: every start tag
/// counts one level until its end tag (or `/>`) is seen.
pub fn max_depth(text: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        // Comments, CDATA sections and processing instructions: no level, skipped whole.
        let skip_to = |end: &[u8]| {
            rest.windows(end.len())
                .position(|w| w == end)
                .map_or(text.len(), |p| i + p + end.len())
        };
        if rest.starts_with(b"<!--") {
            i = skip_to(b"-->");
            continue;
        }
        if rest.starts_with(b"<![CDATA[") {
            i = skip_to(b"]]>");
            continue;
        }
        if rest.starts_with(b"<?") {
            i = skip_to(b"?>");
            continue;
        }
        match text.get(i + 1) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'!') => {}
            Some(_) => {
                depth += 1;
                max = max.max(depth);
                let end = text[i..].iter().position(|&b| b == b'>').map(|p| i + p);
                if let Some(end) = end {
                    if end > i && text[end - 1] == b'/' {
                        depth -= 1;
                    }
                    i = end;
                }
            }
            None => {}
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_before_parsing() {
        assert_eq!(max_depth(b"<a/>"), 1);
        assert_eq!(max_depth(b"<a><b/><c><d></d></c></a>"), 3);
        assert_eq!(
            max_depth(b"<?xml version=\"1.0\"?><!-- <x><y> --><a>text</a>"),
            1
        );
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
