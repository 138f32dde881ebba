//! Parses tokens into an [`Expr`] tree, following the FHIRPath grammar's precedence.

use crate::ast::{BinaryOp, Expr, Function, TypeOp, TypeSpec, number_literal};
use crate::error::Error;
use crate::lexer::{Tok, Token, tokenize};
use crate::value::{Date, DateTime, Quantity, Time, Value, is_calendar_unit};

/// Parses a whole expression.
pub(crate) fn parse(src: &str) -> Result<Expr, Error> {
    let tokens = tokenize(src)?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.expression(0)?;
    match parser.peek() {
        Tok::Eof => Ok(expr),
        _ => Err(parser.error("unexpected text after the end of the expression")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// Binary operators by precedence level, lowest first.
fn binary_op(tok: &Tok) -> Option<(BinaryOp, u8)> {
    let op = match tok {
        Tok::Ident(word) => match word.as_str() {
            "implies" => (BinaryOp::Implies, 1),
            "or" => (BinaryOp::Or, 2),
            "xor" => (BinaryOp::Xor, 2),
            "and" => (BinaryOp::And, 3),
            "in" => (BinaryOp::In, 4),
            "contains" => (BinaryOp::Contains, 4),
            "div" => (BinaryOp::IntDiv, 10),
            "mod" => (BinaryOp::Mod, 10),
            _ => return None,
        },
        Tok::Sym(sym) => match *sym {
            "=" => (BinaryOp::Eq, 5),
            "~" => (BinaryOp::Equiv, 5),
            "!=" => (BinaryOp::Ne, 5),
            "!~" => (BinaryOp::NotEquiv, 5),
            "<" => (BinaryOp::Lt, 6),
            ">" => (BinaryOp::Gt, 6),
            "<=" => (BinaryOp::Le, 6),
            ">=" => (BinaryOp::Ge, 6),
            "|" => (BinaryOp::Union, 7),
            "+" => (BinaryOp::Add, 9),
            "-" => (BinaryOp::Sub, 9),
            "&" => (BinaryOp::Concat, 9),
            "*" => (BinaryOp::Mul, 10),
            "/" => (BinaryOp::Div, 10),
            _ => return None,
        },
        _ => return None,
    };
    Some(op)
}

/// The precedence of the type operators `is` and `as`.
const TYPE_OP_LEVEL: u8 = 8;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].kind
    }

    fn peek_at(&self, offset: usize) -> &Tok {
        let i = (self.pos + offset).min(self.tokens.len() - 1);
        &self.tokens[i].kind
    }

    fn next(&mut self) -> Tok {
        let tok = self.tokens[self.pos].kind.clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        tok
    }

    fn error(&self, message: &str) -> Error {
        Error::Syntax {
            position: self.tokens[self.pos].pos,
            message: message.to_string(),
        }
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), Error> {
        if *self.peek() == Tok::Sym(sym) {
            self.next();
            Ok(())
        } else {
            Err(self.error(&format!("expected '{sym}'")))
        }
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Tok::Sym(s) if *s == sym)
    }

    /// Precedence climbing over binary and type operators at `min_level` and above.
    fn expression(&mut self, min_level: u8) -> Result<Expr, Error> {
        let mut left = self.unary()?;
        loop {
            if let Tok::Ident(word) = self.peek()
                && (word == "is" || word == "as")
                && TYPE_OP_LEVEL >= min_level
                && !matches!(self.peek_at(1), Tok::Sym("("))
            {
                let op = if word == "is" { TypeOp::Is } else { TypeOp::As };
                self.next();
                let spec = self.type_spec()?;
                left = Expr::TypeOp(op, Box::new(left), spec);
                continue;
            }
            let Some((op, level)) = binary_op(self.peek()) else {
                break;
            };
            if level < min_level {
                break;
            }
            self.next();
            // `implies` is right-associative; everything else is left-associative.
            let next_min = if op == BinaryOp::Implies {
                level
            } else {
                level + 1
            };
            let right = self.expression(next_min)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn type_spec(&mut self) -> Result<TypeSpec, Error> {
        let position = self.tokens[self.pos].pos;
        let spec = self.type_spec_name()?;
        check_type_name(&spec)
            .map_err(|m| Error::Semantic(format!("{m} (at character {position})")))?;
        Ok(spec)
    }

    fn type_spec_name(&mut self) -> Result<TypeSpec, Error> {
        let first = self.identifier()?;
        if (first == "System" || first == "FHIR")
            && self.is_sym(".")
            && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Delimited(_))
        {
            self.next();
            let name = self.identifier()?;
            return Ok(TypeSpec {
                namespace: Some(first),
                name,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn identifier(&mut self) -> Result<String, Error> {
        match self.next() {
            Tok::Ident(name) | Tok::Delimited(name) => Ok(name),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.error("expected an identifier"))
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        if self.is_sym("-") || self.is_sym("+") {
            let negative = self.is_sym("-");
            self.next();
            let operand = self.unary()?;
            return Ok(if negative {
                match operand {
                    Expr::Literal(Value::Integer(i)) => Expr::Literal(Value::Integer(-i)),
                    Expr::Literal(Value::Decimal(d)) => Expr::Literal(Value::Decimal(-d)),
                    other => Expr::Negate(Box::new(other)),
                }
            } else {
                operand
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, Error> {
        let mut expr = self.term()?;
        loop {
            if self.is_sym(".") {
                self.next();
                let invocation = self.invocation()?;
                expr = Expr::Path(Box::new(expr), Box::new(invocation));
            } else if self.is_sym("[") {
                self.next();
                let index = self.expression(0)?;
                self.expect("]")?;
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    /// A name, a function call, or `$this`/`$index`/`$total`.
    fn invocation(&mut self) -> Result<Expr, Error> {
        match self.peek().clone() {
            Tok::Special(name) => {
                self.next();
                Ok(special(&name))
            }
            Tok::Ident(name) => {
                self.next();
                if self.is_sym("(") {
                    self.call(&name)
                } else {
                    Ok(Expr::Member(name))
                }
            }
            Tok::Delimited(name) => {
                self.next();
                Ok(Expr::Member(name))
            }
            _ => Err(self.error("expected a name or a function call")),
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, Error> {
        let position = self.tokens[self.pos - 1].pos;
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.is_sym(")") {
            loop {
                args.push(self.expression(0)?);
                if self.is_sym(",") {
                    self.next();
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        let function = Function::resolve(name, args.len())
            .map_err(|message| Error::Semantic(format!("{message} (at character {position})")))?;
        if matches!(function, Function::Is | Function::As | Function::OfType) {
            let spec = type_argument(&args[0]).ok_or_else(|| {
                Error::Semantic(format!(
                    "'{name}' needs a type name (at character {position})"
                ))
            })?;
            check_type_name(&spec)
                .map_err(|m| Error::Semantic(format!("{m} (at character {position})")))?;
        }
        Ok(Expr::Call(function, args))
    }

    fn term(&mut self) -> Result<Expr, Error> {
        let tok = self.next();
        match tok {
            Tok::Number(text) => {
                let value = number_literal(&text).ok_or_else(|| self.error("invalid number"))?;
                self.quantity_unit(value)
            }
            Tok::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Tok::DateTime(text) => date_literal(&text)
                .map(Expr::Literal)
                .ok_or_else(|| self.error("invalid date/time literal")),
            Tok::External(name) => Ok(Expr::External(name)),
            Tok::Special(name) => Ok(special(&name)),
            Tok::Sym("(") => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            Tok::Empty => Ok(Expr::Empty),
            Tok::Ident(name) if name == "true" || name == "false" => {
                Ok(Expr::Literal(Value::Boolean(name == "true")))
            }
            Tok::Ident(name) => {
                if self.is_sym("(") {
                    self.call(&name)
                } else {
                    Ok(Expr::Member(name))
                }
            }
            Tok::Delimited(name) => Ok(Expr::Member(name)),
            Tok::Eof => Err(self.error("unexpected end of expression")),
            Tok::Sym(_) => {
                self.pos -= 1;
                Err(self.error("unexpected symbol"))
            }
        }
    }

    /// A number followed by a unit string or calendar keyword is a Quantity literal.
    fn quantity_unit(&mut self, value: Value) -> Result<Expr, Error> {
        let number = match &value {
            Value::Integer(i) => rust_decimal::Decimal::from(*i),
            Value::Decimal(d) => *d,
            _ => return Ok(Expr::Literal(value)),
        };
        let unit = match self.peek() {
            Tok::Str(unit) => unit.clone(),
            Tok::Ident(word) if is_calendar_unit(word) => word.clone(),
            _ => return Ok(Expr::Literal(value)),
        };
        self.next();
        Ok(Expr::Literal(Value::Quantity(Quantity {
            value: number,
            unit,
        })))
    }
}

fn special(name: &str) -> Expr {
    match name {
        "this" => Expr::This,
        "index" => Expr::IndexVar,
        _ => Expr::Total,
    }
}

/// Parses the text after `@`: a date, a date-time (with `T`) or a time (`T…`).
pub(crate) fn date_literal(text: &str) -> Option<Value> {
    if let Some(time) = text.strip_prefix('T') {
        return Time::parse(time).map(Value::Time);
    }
    if text.contains('T') {
        return DateTime::parse(text).map(Value::DateTime);
    }
    Date::parse(text).map(Value::Date)
}

/// Reads a type specifier written as a function argument (`ofType(Quantity)`,
/// `is(System.String)`).
pub(crate) fn type_argument(expr: &Expr) -> Option<TypeSpec> {
    match expr {
        Expr::Member(name) => Some(TypeSpec {
            namespace: None,
            name: name.clone(),
        }),
        Expr::Path(ns, name) => match (ns.as_ref(), name.as_ref()) {
            (Expr::Member(ns), Expr::Member(name)) if ns == "System" || ns == "FHIR" => {
                Some(TypeSpec {
                    namespace: Some(ns.clone()),
                    name: name.clone(),
                })
            }
            _ => None,
        },
        _ => None,
    }
}

/// The system types of FHIRPath.
const SYSTEM_TYPES: [&str; 9] = [
    "Any", "Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity",
];

/// Checks that a type specifier names a known System or FHIR type.
fn check_type_name(spec: &TypeSpec) -> Result<(), String> {
    let system = SYSTEM_TYPES.contains(&spec.name.as_str());
    let fhir = fhir::types::intern(&spec.name).is_some();
    let known = match spec.namespace.as_deref() {
        // Any name is accepted in the System namespace; unknown ones simply never match.
        Some("System") => true,
        Some(_) => fhir,
        None => system || fhir,
    };
    if known {
        Ok(())
    } else {
        Err(format!("unknown type '{}'", spec.name))
    }
}
