//! keepalived.conf's syntax: words and quoted strings, `{ ... }` blocks, `#` and `!`
//! comments to the end of the line. One statement per line: a keyword, its arguments, and
//! optionally a block (its `{` on the same line or alone on the next one). Pure: text in,
//! a tree of [`Statement`]s out, each with its line number.

/// One statement: `keyword args... [{ block }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub keyword: String,
    pub args: Vec<String>,
    /// 1-based line of the keyword.
    pub line: usize,
    pub block: Option<Vec<Statement>>,
}

impl Statement {
    /// The statements of its block (none when it has no block).
    pub fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// Keyword and arguments as written (for messages).
    pub fn text(&self) -> String {
        std::iter::once(self.keyword.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
    Newline,
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, SyntaxError> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let mut chars = line.chars().peekable();
        let mut word = String::new();
        let flush = |word: &mut String, tokens: &mut Vec<(Token, usize)>| {
            if !word.is_empty() {
                tokens.push((Token::Word(std::mem::take(word)), number));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '#' | '!' if word.is_empty() => break,
                '"' => {
                    flush(&mut word, &mut tokens);
                    let mut quoted = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '"' {
                            closed = true;
                            break;
                        }
                        quoted.push(c);
                    }
                    if !closed {
                        return Err(SyntaxError {
                            line: number,
                            message: "a quoted string is not closed on its line".to_string(),
                        });
                    }
                    tokens.push((Token::Word(quoted), number));
                }
                '{' | '}' => {
                    flush(&mut word, &mut tokens);
                    tokens.push((if c == '{' { Token::Open } else { Token::Close }, number));
                }
                c if c.is_whitespace() => flush(&mut word, &mut tokens),
                c => word.push(c),
            }
        }
        flush(&mut word, &mut tokens);
        tokens.push((Token::Newline, number));
    }
    Ok(tokens)
}

/// Parses a whole file into its top-level statements.
pub fn parse(text: &str) -> Result<Vec<Statement>, SyntaxError> {
    let tokens = tokenize(text)?;
    let mut position = 0;
    let statements = block(&tokens, &mut position, None)?;
    Ok(statements)
}

fn block(
    tokens: &[(Token, usize)],
    position: &mut usize,
    opened_at: Option<usize>,
) -> Result<Vec<Statement>, SyntaxError> {
    let mut statements: Vec<Statement> = Vec::new();
    loop {
        let Some((token, line)) = tokens.get(*position) else {
            return match opened_at {
                Some(line) => Err(SyntaxError {
                    line,
                    message: "this block is never closed (a `}` is missing)".to_string(),
                }),
                None => Ok(statements),
            };
        };
        let line = *line;
        match token {
            Token::Newline => *position += 1,
            Token::Close => {
                *position += 1;
                return match opened_at {
                    Some(_) => Ok(statements),
                    None => Err(SyntaxError {
                        line,
                        message: "`}` without a matching `{`".to_string(),
                    }),
                };
            }
            Token::Open => {
                // A `{` alone on its line opens the block of the statement before it.
                *position += 1;
                let inner = block(tokens, position, Some(line))?;
                match statements.last_mut() {
                    Some(previous) if previous.block.is_none() => previous.block = Some(inner),
                    _ => {
                        return Err(SyntaxError {
                            line,
                            message: "`{` without a keyword before it".to_string(),
                        });
                    }
                }
            }
            Token::Word(_) => {
                let mut words = Vec::new();
                while let Some((Token::Word(word), _)) = tokens.get(*position) {
                    words.push(word.clone());
                    *position += 1;
                }
                let keyword = words.remove(0);
                let mut statement = Statement {
                    keyword,
                    args: words,
                    line,
                    block: None,
                };
                if let Some((Token::Open, open_line)) = tokens.get(*position) {
                    let open_line = *open_line;
                    *position += 1;
                    statement.block = Some(block(tokens, position, Some(open_line))?);
                }
                statements.push(statement);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_comments_quotes_and_lines() {
        let text = "! comment\nglobal_defs {\n   router_id LVS_DEVEL # trailing\n}\n\n\
                    vrrp_instance VI_1\n{\n  notify_master \"/bin/x a  b\"\n  virtual_ipaddress {\n    192.0.2.1/24 label eth0:1\n  }\n}\n";
        let tree = parse(text).unwrap();
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].keyword, "global_defs");
        assert_eq!(tree[0].line, 2);
        assert_eq!(tree[0].children()[0].text(), "router_id LVS_DEVEL");
        assert_eq!(tree[0].children()[0].line, 3);
        let instance = &tree[1];
        assert_eq!(
            (instance.keyword.as_str(), instance.line),
            ("vrrp_instance", 6)
        );
        assert_eq!(instance.args, ["VI_1"]);
        assert_eq!(instance.children()[0].args, ["/bin/x a  b"]);
        let addresses = &instance.children()[1];
        assert_eq!(addresses.children()[0].text(), "192.0.2.1/24 label eth0:1");
        assert_eq!(addresses.children()[0].line, 10);
    }

    #[test]
    fn one_line_blocks_and_errors() {
        let tree = parse("track_interface { eth0 eth1 }\n").unwrap();
        assert_eq!(tree[0].children()[0].text(), "eth0 eth1");
        assert_eq!(
            parse("vrrp_instance X {\n  priority 1\n").unwrap_err(),
            SyntaxError {
                line: 1,
                message: "this block is never closed (a `}` is missing)".into()
            }
        );
        assert_eq!(parse("a\n}\n").unwrap_err().line, 2);
        assert_eq!(parse("notify \"x\n").unwrap_err().line, 1);
    }
}
