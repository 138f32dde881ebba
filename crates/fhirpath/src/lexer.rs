//! Splits FHIRPath text into tokens.

use crate::error::Error;

/// One token and the character offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A plain identifier (keywords are identifiers too; the parser decides).
    Ident(String),
    /// A `` `delimited` `` identifier, never a keyword.
    Delimited(String),
    Str(String),
    /// Number text as written (`12`, `1.50`).
    Number(String),
    /// `@...` date, date-time or time literal text, without the `@`.
    DateTime(String),
    /// `%name`, `` %`name` `` or `%'name'`.
    External(String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    Sym(&'static str),
    /// `{}`, the empty collection.
    Empty,
    Eof,
}

const SYMBOLS: [&str; 20] = [
    "<=", ">=", "!=", "!~", ".", "[", "]", "(", ")", ",", "+", "-", "*", "/", "|", "&", "=", "~",
    "<", ">",
];

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|c| c.1);
    let syntax = |pos: usize, message: &str| Error::Syntax {
        position: pos,
        message: message.to_string(),
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && at(i + 1) == Some('/') {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err(syntax(pos, "unterminated comment"));
                }
                if chars[i].1 == '*' && chars[i + 1].1 == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                i += 1;
            }
            tokens.push(Token {
                kind: Tok::Ident(chars[start..i].iter().map(|c| c.1).collect()),
                pos,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while at(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            if at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
            }
            tokens.push(Token {
                kind: Tok::Number(chars[start..i].iter().map(|c| c.1).collect()),
                pos,
            });
            continue;
        }
        if c == '\'' || c == '`' {
            let (text, next) =
                quoted(&chars, i, c).ok_or_else(|| syntax(pos, "unterminated string"))?;
            i = next;
            tokens.push(Token {
                kind: if c == '\'' {
                    Tok::Str(text)
                } else {
                    Tok::Delimited(text)
                },
                pos,
            });
            continue;
        }
        if c == '{' {
            i += 1;
            while at(i).is_some_and(char::is_whitespace) {
                i += 1;
            }
            if at(i) != Some('}') {
                return Err(syntax(pos, "expected '}' after '{'"));
            }
            i += 1;
            tokens.push(Token {
                kind: Tok::Empty,
                pos,
            });
            continue;
        }
        if c == '@' {
            let start = i + 1;
            i += 1;
            while at(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+'))
            {
                // A '.' only belongs to the literal when digits follow (fractional seconds);
                // `@2014.lowBoundary()` ends at the dot.
                if at(i) == Some('.') && !at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    break;
                }
                // '+' and '-' belong to the literal only as a zone offset or date separator.
                if matches!(at(i), Some('+') | Some('-'))
                    && !at(i + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    break;
                }
                i += 1;
            }
            tokens.push(Token {
                kind: Tok::DateTime(chars[start..i].iter().map(|c| c.1).collect()),
                pos,
            });
            continue;
        }
        if c == '%' {
            i += 1;
            let name = match at(i) {
                Some(q @ ('`' | '\'')) => {
                    let (text, next) =
                        quoted(&chars, i, q).ok_or_else(|| syntax(pos, "unterminated name"))?;
                    i = next;
                    text
                }
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                    let start = i;
                    while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                        i += 1;
                    }
                    chars[start..i].iter().map(|c| c.1).collect()
                }
                _ => return Err(syntax(pos, "expected a name after '%'")),
            };
            tokens.push(Token {
                kind: Tok::External(name),
                pos,
            });
            continue;
        }
        if c == '$' {
            let start = i + 1;
            i += 1;
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                i += 1;
            }
            let name: String = chars[start..i].iter().map(|c| c.1).collect();
            if !matches!(name.as_str(), "this" | "index" | "total") {
                return Err(syntax(pos, "unknown special variable"));
            }
            tokens.push(Token {
                kind: Tok::Special(name),
                pos,
            });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)]
            .iter()
            .map(|c| c.1)
            .collect();
        match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            Some(sym) => {
                i += sym.chars().count();
                tokens.push(Token {
                    kind: Tok::Sym(sym),
                    pos,
                });
            }
            None => return Err(syntax(pos, "unexpected character")),
        }
    }
    tokens.push(Token {
        kind: Tok::Eof,
        pos: src.len(),
    });
    Ok(tokens)
}

/// Reads a quoted string or delimited identifier starting at `start` (the opening quote);
/// returns its unescaped text and the index after the closing quote.
fn quoted(chars: &[(usize, char)], start: usize, quote: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let c = chars.get(i)?.1;
        if c == quote {
            return Some((out, i + 1));
        }
        if c == '\\' {
            let e = chars.get(i + 1)?.1;
            i += 2;
            match e {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.get(i..i + 4)?.iter().map(|c| c.1).collect();
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    out.push(char::from_u32(code)?);
                    i += 4;
                }
                other => out.push(other),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
}
