//! Expression text → [`Expr`]: the SQL-like language pipeline files use in `keep:`,
//! `fields:`, `timestamp:`, `value:` and `gap_expression:`.
//!
//! Grammar, loosest binding first (every binary level is left-associative):
//!
//! ```text
//! expr       := or
//! or         := and (("or" | "||") and)*
//! and        := not (("and" | "&&") not)*
//! not        := ("not" | "!") not | comparison
//! comparison := is_null (("==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") is_null)*
//! is_null    := additive ("is" ["not"] "null")*
//! additive   := term (("+" | "-") term)*
//! term       := unary (("*" | "/" | "%") unary)*
//! unary      := "-" unary | primary
//! primary    := number | string | "true" | "false" | "null" | column | call
//!             | "cast" "(" expr "as" type ")"
//!             | "case" ("when" expr "then" expr)+ ["else" expr] "end"
//!             | "(" expr ")"
//! column     := identifier | "`" any text, "``" for a backquote "`"
//! call       := identifier "(" [expr ("," expr)*] ")"
//! string     := "'" any text, "''" for a quote "'"
//! ```
//!
//! The binary levels are those of [`BinaryOp::precedence`]. Keywords are case-insensitive.
//! Two foldings keep `parse(&e.to_string()) == e` for every expression built from finite
//! literals:
//! - a `-` directly before a number literal is part of the literal (`-5` is the literal −5, so
//!   `i64::MIN` can be written);
//! - `to_timestamp(<integer literal>)` is the timestamp literal (that is how
//!   `Literal::Timestamp` displays).
//!
//! The one shape that does not read back identically is `Negate` applied directly to a number
//! literal, which displays as `(-5)` and reads back as the literal −5: the same value.
//!
//! Errors read `at character N: <what is wrong>`, N counting characters from 1; pipeline
//! files rely on that prefix to point at the exact column of a bad expression.

use super::{BinaryOp, Expr, Function, Literal};
use crate::schema::DataType;

/// Whether `word` is a reserved word of the expression language.
pub fn is_keyword(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "and"
            | "or"
            | "not"
            | "is"
            | "null"
            | "true"
            | "false"
            | "cast"
            | "as"
            | "case"
            | "when"
            | "then"
            | "else"
            | "end"
    )
}

/// Parses expression text.
///
/// # Examples
///
/// ```
/// use weir_model::expr::{col, lit, parse};
///
/// let e = parse("amount * 2 > 10 and country = 'NL'").unwrap();
/// assert_eq!(e, col("amount").mul(lit(2)).gt(lit(10)).and(col("country").eq(lit("NL"))));
/// assert_eq!(parse(&e.to_string()).unwrap(), e);
/// assert!(parse("amount >").unwrap_err().starts_with("at character 9:"));
/// ```
pub fn parse(text: &str) -> Result<Expr, String> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        text_len: text.chars().count(),
    };
    let expr = parser.expr()?;
    match parser.peek() {
        None => Ok(expr),
        Some(t) => Err(error_at(
            t.offset,
            format!(
                "unexpected {} after the end of the expression",
                t.kind.describe()
            ),
        )),
    }
}

fn error_at(offset: usize, message: impl std::fmt::Display) -> String {
    format!("at character {}: {message}", offset + 1)
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    /// A plain identifier or keyword, as written.
    Word(String),
    /// A backquoted identifier, unescaped.
    QuotedName(String),
    /// A number literal's text (digits, optional fraction and exponent).
    Number(String),
    /// A string literal, unescaped.
    Str(String),
    /// An operator or punctuation.
    Symbol(&'static str),
}

impl TokenKind {
    fn describe(&self) -> String {
        match self {
            TokenKind::Word(w) => format!("`{w}`"),
            TokenKind::QuotedName(n) => format!("column `{n}`"),
            TokenKind::Number(n) => format!("number `{n}`"),
            TokenKind::Str(_) => "a string".to_string(),
            TokenKind::Symbol(s) => format!("`{s}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// 0-based character offset of the token's first character.
    offset: usize,
}

/// Operators, longest first so that `<=` wins over `<`.
const SYMBOLS: &[&str] = &[
    "==", "!=", "<>", "<=", ">=", "&&", "||", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")",
    ",", "!",
];

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let kind = if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            TokenKind::Word(chars[start..i].iter().collect())
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            i = lex_number(&chars, i);
            TokenKind::Number(chars[start..i].iter().collect())
        } else if c == '\'' || c == '`' {
            let (content, end) = lex_quoted(&chars, i, c)?;
            i = end;
            if c == '\'' {
                TokenKind::Str(content)
            } else if content.is_empty() {
                return Err(error_at(start, "empty column name ``"));
            } else {
                TokenKind::QuotedName(content)
            }
        } else if let Some(sym) = SYMBOLS.iter().find(|s| {
            s.chars()
                .enumerate()
                .all(|(k, sc)| chars.get(i + k) == Some(&sc))
        }) {
            i += sym.chars().count();
            TokenKind::Symbol(sym)
        } else {
            let hint = match c {
                '"' => " (strings use single quotes: 'text'; odd column names use backquotes: `my col`)",
                '&' => " (did you mean `and` or `&&`?)",
                '|' => " (did you mean `or` or `||`?)",
                _ => "",
            };
            return Err(error_at(start, format!("unexpected character `{c}`{hint}")));
        };
        tokens.push(Token {
            kind,
            offset: start,
        });
    }
    Ok(tokens)
}

/// Scans digits, an optional fraction and an optional exponent; returns the end offset.
fn lex_number(chars: &[char], mut i: usize) -> usize {
    let digits = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    digits(&mut i);
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
        i += 1;
        digits(&mut i);
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(i + 1), Some('+' | '-')));
        if chars.get(i + 1 + sign).is_some_and(|d| d.is_ascii_digit()) {
            i += 1 + sign;
            digits(&mut i);
        }
    }
    i
}

/// Scans text between `quote`s starting at `start`, where a doubled quote stands for one.
/// Returns the content and the offset after the closing quote.
fn lex_quoted(chars: &[char], start: usize, quote: char) -> Result<(String, usize), String> {
    let mut content = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                let what = if quote == '\'' {
                    "string"
                } else {
                    "quoted column name"
                };
                return Err(error_at(
                    start,
                    format!("unterminated {what}: no closing {quote}"),
                ));
            }
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    content.push(quote);
                    i += 2;
                } else {
                    return Ok((content, i + 1));
                }
            }
            Some(&c) => {
                content.push(c);
                i += 1;
            }
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Length of the text in characters, for errors at its end.
    text_len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_kind(&self, ahead: usize) -> Option<&TokenKind> {
        self.tokens.get(self.pos + ahead).map(|t| &t.kind)
    }

    /// Offset of the current token, or of the end of the text.
    fn offset(&self) -> usize {
        self.peek().map_or(self.text_len, |t| t.offset)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "end of text".to_string(), |t| t.kind.describe())
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek_kind(0), Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn at_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek_kind(0), Some(TokenKind::Symbol(s)) if *s == symbol)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.at_keyword(keyword);
        self.pos += usize::from(found);
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.at_symbol(symbol);
        self.pos += usize::from(found);
        found
    }

    fn expect_keyword(&mut self, keyword: &str, context: &str) -> Result<(), String> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(error_at(
                self.offset(),
                format!("expected `{keyword}` {context}, found {}", self.found()),
            ))
        }
    }

    fn expect_symbol(&mut self, symbol: &str, context: &str) -> Result<(), String> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(error_at(
                self.offset(),
                format!("expected `{symbol}` {context}, found {}", self.found()),
            ))
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.binary(BinaryOp::Or.precedence())
    }

    /// The binary operator at the current token, if any.
    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match self.peek_kind(0)? {
            TokenKind::Symbol(s) => match *s {
                "+" => BinaryOp::Add,
                "-" => BinaryOp::Sub,
                "*" => BinaryOp::Mul,
                "/" => BinaryOp::Div,
                "%" => BinaryOp::Mod,
                "==" | "=" => BinaryOp::Eq,
                "!=" | "<>" => BinaryOp::NotEq,
                "<" => BinaryOp::Lt,
                "<=" => BinaryOp::LtEq,
                ">" => BinaryOp::Gt,
                ">=" => BinaryOp::GtEq,
                "&&" => BinaryOp::And,
                "||" => BinaryOp::Or,
                _ => return None,
            },
            TokenKind::Word(w) if w.eq_ignore_ascii_case("and") => BinaryOp::And,
            TokenKind::Word(w) if w.eq_ignore_ascii_case("or") => BinaryOp::Or,
            _ => return None,
        })
    }

    /// Parses operators of binding strength `level` and tighter, left-associatively.
    fn binary(&mut self, level: u8) -> Result<Expr, String> {
        let comparison = BinaryOp::Eq.precedence();
        if level > BinaryOp::Mul.precedence() {
            return self.unary();
        }
        // SQL's NOT sits between AND and the comparisons: `not a = b` is `not (a = b)`.
        if level == comparison && (self.at_keyword("not") || self.at_symbol("!")) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.binary(comparison)?)));
        }
        let operand = |p: &mut Parser| {
            if level == comparison {
                p.is_null()
            } else {
                p.binary(level + 1)
            }
        };
        let mut left = operand(self)?;
        while let Some(op) = self.binary_op().filter(|op| op.precedence() == level) {
            self.pos += 1;
            let right = operand(self)?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    /// `x is null` / `x is not null`, binding tighter than comparisons.
    fn is_null(&mut self) -> Result<Expr, String> {
        let mut e = self.binary(BinaryOp::Add.precedence())?;
        while self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            self.expect_keyword(
                "null",
                if negated {
                    "after `is not`"
                } else {
                    "or `not null` after `is`"
                },
            )?;
            e = if negated {
                Expr::IsNotNull(Box::new(e))
            } else {
                Expr::IsNull(Box::new(e))
            };
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.at_symbol("-") {
            let minus = self.offset();
            self.pos += 1;
            if let Some(TokenKind::Number(text)) = self.peek_kind(0) {
                let text = format!("-{text}");
                self.pos += 1;
                return number_literal(&text, minus).map(Expr::Literal);
            }
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(token) = self.peek().cloned() else {
            return Err(error_at(
                self.text_len,
                "expected an expression, found end of text",
            ));
        };
        let offset = token.offset;
        match token.kind {
            TokenKind::Number(text) => {
                self.pos += 1;
                number_literal(&text, offset).map(Expr::Literal)
            }
            TokenKind::Str(s) => {
                self.pos += 1;
                Ok(Expr::Literal(Literal::String(s)))
            }
            TokenKind::QuotedName(name) => {
                self.pos += 1;
                Ok(Expr::Column(name))
            }
            TokenKind::Symbol("(") => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect_symbol(
                    ")",
                    &format!("to close the `(` at character {}", offset + 1),
                )?;
                Ok(e)
            }
            TokenKind::Word(word) => {
                let lower = word.to_ascii_lowercase();
                match lower.as_str() {
                    "true" | "false" | "null" => {
                        self.pos += 1;
                        Ok(Expr::Literal(match lower.as_str() {
                            "true" => Literal::Boolean(true),
                            "false" => Literal::Boolean(false),
                            _ => Literal::Null,
                        }))
                    }
                    "cast" => self.cast(),
                    "case" => self.case(),
                    _ if is_keyword(&lower) => Err(error_at(
                        offset,
                        format!("expected an expression, found keyword `{word}` (quote a column of that name: `{word}`)"),
                    )),
                    _ if self.peek_kind(1) == Some(&TokenKind::Symbol("(")) => self.call(&word, offset),
                    _ => {
                        self.pos += 1;
                        Ok(Expr::Column(word))
                    }
                }
            }
            TokenKind::Symbol(s) => Err(error_at(
                offset,
                format!("expected an expression, found `{s}`"),
            )),
        }
    }

    fn cast(&mut self) -> Result<Expr, String> {
        let start = self.offset();
        self.pos += 1;
        self.expect_symbol("(", "after `cast`")?;
        let e = self.expr()?;
        self.expect_keyword("as", "in `cast(<expression> as <type>)`")?;
        let type_offset = self.offset();
        let type_text = self.type_name()?;
        let to = DataType::parse(&type_text).ok_or_else(|| {
            error_at(
                type_offset,
                format!("unknown type `{type_text}` (types: bool, int64, float64, string, timestamp, list<type>)"),
            )
        })?;
        self.expect_symbol(
            ")",
            &format!("to close the `cast(` at character {}", start + 1),
        )?;
        Ok(Expr::Cast {
            expr: Box::new(e),
            to,
        })
    }

    /// A type name: a word, optionally followed by `<type>` (as in `list<int64>`).
    fn type_name(&mut self) -> Result<String, String> {
        let Some(TokenKind::Word(word)) = self.peek_kind(0).cloned() else {
            return Err(error_at(
                self.offset(),
                format!("expected a type name, found {}", self.found()),
            ));
        };
        self.pos += 1;
        if !self.eat_symbol("<") {
            return Ok(word);
        }
        let inner = self.type_name()?;
        self.expect_symbol(">", &format!("to close `{word}<`"))?;
        Ok(format!("{word}<{inner}>"))
    }

    fn case(&mut self) -> Result<Expr, String> {
        let start = self.offset();
        self.pos += 1;
        let mut when = Vec::new();
        while self.eat_keyword("when") {
            let condition = self.expr()?;
            self.expect_keyword("then", "after the `when` condition")?;
            when.push((condition, self.expr()?));
        }
        if when.is_empty() {
            return Err(error_at(
                self.offset(),
                format!("expected `when` after `case`, found {}", self.found()),
            ));
        }
        let otherwise = if self.eat_keyword("else") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_keyword(
            "end",
            &format!("to close the `case` at character {}", start + 1),
        )?;
        Ok(Expr::Case { when, otherwise })
    }

    fn call(&mut self, name: &str, offset: usize) -> Result<Expr, String> {
        let func = Function::by_name(name).ok_or_else(|| {
            let known: Vec<&str> = Function::ALL.iter().map(|f| f.name()).collect();
            error_at(
                offset,
                format!(
                    "unknown function `{name}` (functions: {})",
                    known.join(", ")
                ),
            )
        })?;
        self.pos += 2; // the name and `(`
        let mut args = Vec::new();
        if !self.eat_symbol(")") {
            loop {
                args.push(self.expr()?);
                if self.eat_symbol(")") {
                    break;
                }
                self.expect_symbol(
                    ",",
                    &format!("or `)` in the arguments of `{}(`", func.name()),
                )?;
            }
        }
        if let (Function::ToTimestamp, [Expr::Literal(Literal::Int64(ms))]) =
            (func, args.as_slice())
        {
            return Ok(Expr::Literal(Literal::Timestamp(*ms)));
        }
        Ok(Expr::Call { func, args })
    }
}

/// A number literal: an integer when it has neither fraction nor exponent, else a float.
fn number_literal(text: &str, offset: usize) -> Result<Literal, String> {
    if text.contains(['.', 'e', 'E']) {
        text.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Literal::Float64)
            .ok_or_else(|| error_at(offset, format!("number `{text}` is out of range")))
    } else {
        text.parse::<i64>().map(Literal::Int64).map_err(|_| {
            error_at(offset, format!("integer `{text}` does not fit in 64 bits (write it as a float, e.g. `{text}.0`)"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{col, lit};
    use proptest::prelude::*;

    fn p(text: &str) -> Expr {
        parse(text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
    }

    #[test]
    fn reads_each_literal_kind() {
        assert_eq!(p("42"), lit(42));
        assert_eq!(p("-42"), lit(-42));
        assert_eq!(p("-9223372036854775808"), lit(i64::MIN));
        assert_eq!(p("2.5"), lit(2.5));
        assert_eq!(p("3.0"), lit(3.0));
        assert_eq!(p(".5"), lit(0.5));
        assert_eq!(p("1e3"), lit(1000.0));
        assert_eq!(p("-1.5E-2"), lit(-0.015));
        assert_eq!(p("'it''s'"), lit("it's"));
        assert_eq!(p("''"), lit(""));
        assert_eq!(p("TRUE"), lit(true));
        assert_eq!(p("false"), lit(false));
        assert_eq!(p("Null"), Expr::Literal(Literal::Null));
        assert_eq!(
            p("to_timestamp(1700000000000)"),
            Expr::Literal(Literal::Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            p("to_timestamp(ts_text)"),
            Expr::call(Function::ToTimestamp, vec![col("ts_text")])
        );
    }

    #[test]
    fn reads_columns_plain_and_backquoted() {
        assert_eq!(p("user_id"), col("user_id"));
        assert_eq!(p("`my col`"), col("my col"));
        assert_eq!(p("`and`"), col("and"));
        assert_eq!(p("`a``b`"), col("a`b"));
    }

    #[test]
    fn multiplication_binds_tighter_than_addition_and_both_are_left_associative() {
        assert_eq!(p("a + b * c"), col("a").add(col("b").mul(col("c"))));
        assert_eq!(p("a - b - c"), col("a").sub(col("b")).sub(col("c")));
        assert_eq!(p("a / b % c"), col("a").div(col("b")).rem(col("c")));
        assert_eq!(p("(a + b) * c"), col("a").add(col("b")).mul(col("c")));
    }

    #[test]
    fn comparison_binds_tighter_than_not_which_binds_tighter_than_and_then_or() {
        assert_eq!(
            p("a = 1 or b <> 2 and not c >= 3"),
            col("a").eq(lit(1)).or(col("b")
                .not_eq(lit(2))
                .and(Expr::Not(Box::new(col("c").gt_eq(lit(3))))))
        );
        assert_eq!(
            p("a == 1 && b != 2 || !c"),
            col("a")
                .eq(lit(1))
                .and(col("b").not_eq(lit(2)))
                .or(Expr::Not(Box::new(col("c"))))
        );
        assert_eq!(
            p("a + 1 < b * 2"),
            col("a").add(lit(1)).lt(col("b").mul(lit(2)))
        );
        assert_eq!(p("a <= b"), col("a").lt_eq(col("b")));
        assert_eq!(p("a > b"), col("a").gt(col("b")));
    }

    #[test]
    fn grammar_levels_follow_binary_op_precedence() {
        // Each pair (looser, tighter) must parse as `x looser (y tighter z)`.
        let ops = [
            BinaryOp::Or,
            BinaryOp::And,
            BinaryOp::Eq,
            BinaryOp::Add,
            BinaryOp::Mul,
        ];
        for pair in ops.windows(2) {
            let (loose, tight) = (pair[0], pair[1]);
            assert!(loose.precedence() < tight.precedence());
            let text = format!("x {} y {} z", loose.symbol(), tight.symbol());
            let expected = Expr::Binary {
                op: loose,
                left: Box::new(col("x")),
                right: Box::new(Expr::Binary {
                    op: tight,
                    left: Box::new(col("y")),
                    right: Box::new(col("z")),
                }),
            };
            assert_eq!(p(&text), expected, "{text}");
        }
    }

    #[test]
    fn unary_minus_negates_expressions_and_folds_into_number_literals() {
        assert_eq!(p("-a * b"), Expr::Negate(Box::new(col("a"))).mul(col("b")));
        assert_eq!(p("a - -1"), col("a").sub(lit(-1)));
        assert_eq!(p("a -1"), col("a").sub(lit(1)));
        assert_eq!(
            p("--a"),
            Expr::Negate(Box::new(Expr::Negate(Box::new(col("a")))))
        );
    }

    #[test]
    fn is_null_and_is_not_null_apply_to_the_arithmetic_before_them() {
        assert_eq!(
            p("a + 1 is null"),
            Expr::IsNull(Box::new(col("a").add(lit(1))))
        );
        assert_eq!(
            p("a IS NOT NULL and b"),
            Expr::IsNotNull(Box::new(col("a"))).and(col("b"))
        );
    }

    #[test]
    fn reads_cast_case_and_function_calls() {
        assert_eq!(p("cast(a as double)"), col("a").cast(DataType::Float64));
        assert_eq!(
            p("CAST(a AS list<int>)"),
            col("a").cast(DataType::List(Box::new(DataType::Int64)))
        );
        assert_eq!(
            p("case when a > 1 then 'big' when a > 0 then 'small' else 'none' end"),
            Expr::Case {
                when: vec![
                    (col("a").gt(lit(1)), lit("big")),
                    (col("a").gt(lit(0)), lit("small"))
                ],
                otherwise: Some(Box::new(lit("none"))),
            }
        );
        assert_eq!(
            p("case when a then 1 end"),
            Expr::Case {
                when: vec![(col("a"), lit(1))],
                otherwise: None
            }
        );
        assert_eq!(
            p("UPPER(name)"),
            Expr::call(Function::Upper, vec![col("name")])
        );
        assert_eq!(
            p("concat(a, '-', b)"),
            Expr::call(Function::Concat, vec![col("a"), lit("-"), col("b")])
        );
        assert_eq!(p("coalesce()"), Expr::call(Function::Coalesce, vec![]));
    }

    fn err(text: &str) -> String {
        parse(text).expect_err(text)
    }

    #[test]
    fn errors_name_the_problem_and_its_character() {
        assert_eq!(
            err("a >"),
            "at character 4: expected an expression, found end of text"
        );
        assert_eq!(
            err("(a + 1"),
            "at character 7: expected `)` to close the `(` at character 1, found end of text"
        );
        assert_eq!(
            err("a b"),
            "at character 3: unexpected `b` after the end of the expression"
        );
        assert_eq!(
            err("'abc"),
            "at character 1: unterminated string: no closing '"
        );
        assert_eq!(err("a = \"x\""), "at character 5: unexpected character `\"` (strings use single quotes: 'text'; odd column names use backquotes: `my col`)");
        assert_eq!(
            err("a is 1"),
            "at character 6: expected `null` or `not null` after `is`, found number `1`"
        );
        assert_eq!(err("cast(a as blob)"), "at character 11: unknown type `blob` (types: bool, int64, float64, string, timestamp, list<type>)");
        assert_eq!(
            err("case else 1 end"),
            "at character 6: expected `when` after `case`, found `else`"
        );
        assert_eq!(err("99999999999999999999"), "at character 1: integer `99999999999999999999` does not fit in 64 bits (write it as a float, e.g. `99999999999999999999.0`)");
        assert_eq!(
            err("a & b"),
            "at character 3: unexpected character `&` (did you mean `and` or `&&`?)"
        );
        assert_eq!(err("x = and"), "at character 5: expected an expression, found keyword `and` (quote a column of that name: `and`)");
        assert_eq!(err("``"), "at character 1: empty column name ``");
        assert_eq!(
            err("lower(a b)"),
            "at character 9: expected `,` or `)` in the arguments of `lower(`, found `b`"
        );
    }

    #[test]
    fn unknown_functions_list_the_known_ones() {
        let e = err("a + frobnicate(b)");
        assert!(
            e.starts_with(
                "at character 5: unknown function `frobnicate` (functions: lower, upper,"
            ),
            "{e}"
        );
        for f in Function::ALL {
            assert!(e.contains(f.name()), "{e}");
        }
    }

    #[test]
    fn error_offsets_count_characters_not_bytes() {
        assert_eq!(
            err("'é' = )"),
            "at character 7: expected an expression, found `)`"
        );
    }

    fn column() -> impl Strategy<Value = Expr> {
        prop::sample::select(vec!["a", "b", "user_id", "my col", "and", "a`b", "End"]).prop_map(col)
    }

    fn literal() -> impl Strategy<Value = Expr> {
        prop_oneof![
            Just(Literal::Null),
            any::<bool>().prop_map(Literal::Boolean),
            any::<i64>().prop_map(Literal::Int64),
            // Non-finite floats have no literal syntax.
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Literal::Float64),
            (-3i64..3).prop_map(|x| Literal::Float64(x as f64)),
            "[a-z' é]{0,6}".prop_map(Literal::String),
            any::<i64>().prop_map(Literal::Timestamp),
        ]
        .prop_map(Expr::Literal)
    }

    fn data_type() -> impl Strategy<Value = DataType> {
        prop::sample::select(vec![
            DataType::Boolean,
            DataType::Int64,
            DataType::Float64,
            DataType::String,
            DataType::Timestamp,
            DataType::List(Box::new(DataType::List(Box::new(DataType::String)))),
        ])
    }

    fn binary_op() -> impl Strategy<Value = BinaryOp> {
        prop::sample::select(vec![
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Mod,
            BinaryOp::Eq,
            BinaryOp::NotEq,
            BinaryOp::Lt,
            BinaryOp::LtEq,
            BinaryOp::Gt,
            BinaryOp::GtEq,
            BinaryOp::And,
            BinaryOp::Or,
        ])
    }

    /// `-<number literal>` reads back as a negative literal (see the module docs), so the
    /// generator writes the literal itself where it would negate one.
    fn negate(e: Expr) -> Expr {
        match e {
            Expr::Literal(Literal::Int64(_) | Literal::Float64(_)) => e,
            other => Expr::Negate(Box::new(other)),
        }
    }

    /// `to_timestamp(<integer literal>)` reads back as a timestamp literal, so the generator
    /// writes that literal directly.
    fn call(func: Function, args: Vec<Expr>) -> Expr {
        match (func, args.as_slice()) {
            (Function::ToTimestamp, [Expr::Literal(Literal::Int64(ms))]) => {
                Expr::Literal(Literal::Timestamp(*ms))
            }
            _ => Expr::Call { func, args },
        }
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![column(), literal()];
        leaf.prop_recursive(5, 48, 4, |inner| {
            prop_oneof![
                (binary_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary {
                    op,
                    left: Box::new(l),
                    right: Box::new(r)
                }),
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                inner.clone().prop_map(negate),
                inner.clone().prop_map(|e| Expr::IsNull(Box::new(e))),
                inner.clone().prop_map(|e| Expr::IsNotNull(Box::new(e))),
                (inner.clone(), data_type()).prop_map(|(e, to)| Expr::Cast {
                    expr: Box::new(e),
                    to
                }),
                (
                    prop::sample::select(Function::ALL.to_vec()),
                    prop::collection::vec(inner.clone(), 0..3)
                )
                    .prop_map(|(func, args)| call(func, args)),
                (
                    prop::collection::vec((inner.clone(), inner.clone()), 1..3),
                    prop::option::of(inner)
                )
                    .prop_map(|(when, otherwise)| Expr::Case {
                        when,
                        otherwise: otherwise.map(Box::new)
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn display_then_parse_gives_back_the_expression(e in expr()) {
            let text = e.to_string();
            let back = parse(&text).map_err(|m| TestCaseError::fail(format!("`{text}`: {m}")))?;
            prop_assert_eq!(back, e, "text: {}", text);
        }
    }

    #[test]
    fn negating_a_number_literal_reads_back_as_the_negative_literal() {
        let e = Expr::Negate(Box::new(lit(5)));
        assert_eq!(p(&e.to_string()), lit(-5));
    }
}
