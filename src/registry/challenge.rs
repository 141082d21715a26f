//! `WWW-Authenticate` parsing (RFC 7235 challenges), tolerant of the
//! unquoted values some registries send.

use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

/// One challenge: a lowercased scheme and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How a registry wants to be authenticated, as far as we support it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthScheme {
    Basic,
    Bearer(BearerChallenge),
}

/// Where to get a bearer token. `scope` is what the registry asked for on
/// this very request; it is never reused for another repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// The scheme to answer a 401 with: bearer when offered (it works for
/// anonymous pulls too), else basic; `None` when neither is offered.
pub(crate) fn pick_scheme(headers: &HeaderMap) -> Option<AuthScheme> {
    let challenges: Vec<Challenge> =
        headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).flat_map(parse_challenges).collect();
    let bearer = challenges.iter().find_map(|c| {
        let realm = c.param("realm").filter(|r| !r.is_empty());
        (c.scheme == "bearer").then_some(realm).flatten().map(|realm| BearerChallenge {
            realm: realm.to_string(),
            service: c.param("service").filter(|s| !s.is_empty()).map(str::to_string),
            scope: c.param("scope").filter(|s| !s.is_empty()).map(str::to_string),
        })
    });
    match bearer {
        Some(b) => Some(AuthScheme::Bearer(b)),
        None => challenges.iter().any(|c| c.scheme == "basic").then_some(AuthScheme::Basic),
    }
}

/// Parses every challenge in one header value. Several challenges may share
/// a value, separated by commas like the parameters: a token that is not
/// followed by `=` starts the next challenge.
pub(crate) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut lx = Lexer { s: value.as_bytes(), i: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip(|b| matches!(b, b' ' | b'\t' | b','));
        if lx.eof() {
            return out;
        }
        let scheme = lx.token();
        if scheme.is_empty() {
            lx.i += 1; // not a challenge; step over the stray byte
            continue;
        }
        let mut challenge = Challenge { scheme: scheme.to_ascii_lowercase(), params: Vec::new() };
        loop {
            lx.skip(|b| matches!(b, b' ' | b'\t' | b','));
            let start = lx.i;
            let name = lx.token();
            if name.is_empty() {
                if lx.eof() {
                    break;
                }
                lx.i += 1;
                continue;
            }
            lx.skip(|b| matches!(b, b' ' | b'\t'));
            if lx.peek() != Some(b'=') {
                lx.i = start;
                break;
            }
            lx.i += 1;
            lx.skip(|b| matches!(b, b' ' | b'\t'));
            let value = lx.value();
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        out.push(challenge);
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, class: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&class) {
            self.i += 1;
        }
    }

    /// An RFC 7230 token.
    fn token(&mut self) -> &'a str {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        // Token bytes are ASCII, so the slice is valid UTF-8.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }

    /// A quoted string (with backslash escapes), or anything up to the next
    /// comma or blank for senders that leave URLs unquoted.
    fn value(&mut self) -> String {
        let mut out = Vec::new();
        if self.peek() == Some(b'"') {
            self.i += 1;
            while let Some(b) = self.peek() {
                self.i += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        if let Some(escaped) = self.peek() {
                            out.push(escaped);
                            self.i += 1;
                        }
                    }
                    _ => out.push(b),
                }
            }
        } else {
            let start = self.i;
            self.skip(|b| !matches!(b, b',' | b' ' | b'\t'));
            out.extend_from_slice(&self.s[start..self.i]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[test]
    fn docker_hub_style_bearer() {
        let v = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let c = parse_challenges(v);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            [
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io"),
                ("scope", "repository:library/busybox:pull")
            ]
        );
    }

    #[test]
    fn basic_and_case_and_spacing() {
        let c = parse_challenges(r#"BASIC Realm = "pinshim-test" "#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("pinshim-test"));
    }

    #[test]
    fn several_challenges_in_one_value() {
        let c = parse_challenges(r#"Basic realm="a", Bearer realm="https://t/x",service=reg, Negotiate abc=="#);
        let schemes: Vec<&str> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate"]);
        assert_eq!(c[1].param("realm"), Some("https://t/x"));
        assert_eq!(c[1].param("service"), Some("reg"));
    }

    #[test]
    fn escapes_unquoted_urls_and_errors() {
        let c = parse_challenges(
            r#"Bearer realm=https://t:8443/token?x=1,service="a \"quoted\" name",error="insufficient_scope""#,
        );
        assert_eq!(c[0].param("realm"), Some("https://t:8443/token?x=1"));
        assert_eq!(c[0].param("service"), Some(r#"a "quoted" name"#));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for v in ["", ",,,", "=", "\"", "Bearer realm=\"unterminated", "Bearer ,= ,", "Bearer realm"] {
            let _ = parse_challenges(v);
        }
        assert_eq!(parse_challenges("Bearer realm")[0].params, vec![]);
    }

    #[test]
    fn bearer_is_preferred_across_header_lines() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="r""#));
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="https://t",scope="s""#));
        let Some(AuthScheme::Bearer(b)) = pick_scheme(&h) else { panic!("bearer expected") };
        assert_eq!((b.realm.as_str(), b.service, b.scope.as_deref()), ("https://t", None, Some("s")));

        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="r""#));
        assert_eq!(pick_scheme(&h), Some(AuthScheme::Basic));
        // A bearer challenge without a realm cannot be answered.
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer service=x"));
        assert_eq!(pick_scheme(&h), None);
        assert_eq!(pick_scheme(&HeaderMap::new()), None);
    }
}
