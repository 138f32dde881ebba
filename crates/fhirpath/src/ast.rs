//! The syntax tree of a compiled expression.

use rust_decimal::Decimal;

use crate::value::Value;

/// An expression node.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// `{}`.
    Empty,
    /// A literal value.
    Literal(Value),
    /// A name at the start of a path or after a dot: a member, or a type name at the start.
    Member(String),
    /// A function call on the current focus (after a dot, or at the start).
    Call(Function, Vec<Expr>),
    /// `left.right`: evaluate `right` with each item of `left` as focus.
    Path(Box<Expr>, Box<Expr>),
    /// `base[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `-x` or `+x`.
    Negate(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `x is T` / `x as T`.
    TypeOp(TypeOp, Box<Expr>, TypeSpec),
    /// `%name`.
    External(String),
    This,
    IndexVar,
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeOp {
    Is,
    As,
}

/// A type name as written: optional namespace (`FHIR`, `System`) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

macro_rules! functions {
    ($($variant:ident = $name:literal ($min:literal, $max:literal)),* $(,)?) => {
        /// The functions the engine knows, resolved when the expression is compiled.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Function { $($variant),* }

        impl Function {
            /// Resolves a function name and checks its argument count.
            pub fn resolve(name: &str, args: usize) -> Result<Function, String> {
                let (f, min, max) = match name {
                    $($name => (Function::$variant, $min, $max),)*
                    _ => return Err(format!("unknown function '{name}'")),
                };
                if args < min || args > max {
                    return Err(format!("function '{name}' takes {min} to {max} arguments, got {args}"));
                }
                Ok(f)
            }
        }
    };
}

functions! {
    Empty = "empty" (0, 0),
    Exists = "exists" (0, 1),
    All = "all" (1, 1),
    AllTrue = "allTrue" (0, 0),
    AnyTrue = "anyTrue" (0, 0),
    AllFalse = "allFalse" (0, 0),
    AnyFalse = "anyFalse" (0, 0),
    SubsetOf = "subsetOf" (1, 1),
    SupersetOf = "supersetOf" (1, 1),
    Count = "count" (0, 0),
    Distinct = "distinct" (0, 0),
    IsDistinct = "isDistinct" (0, 0),
    Where = "where" (1, 1),
    Select = "select" (1, 1),
    Repeat = "repeat" (1, 1),
    OfType = "ofType" (1, 1),
    Single = "single" (0, 0),
    First = "first" (0, 0),
    Last = "last" (0, 0),
    Tail = "tail" (0, 0),
    Skip = "skip" (1, 1),
    Take = "take" (1, 1),
    Intersect = "intersect" (1, 1),
    Exclude = "exclude" (1, 1),
    Union = "union" (1, 1),
    Combine = "combine" (1, 1),
    Iif = "iif" (2, 3),
    ToBoolean = "toBoolean" (0, 0),
    ConvertsToBoolean = "convertsToBoolean" (0, 0),
    ToInteger = "toInteger" (0, 0),
    ConvertsToInteger = "convertsToInteger" (0, 0),
    ToDate = "toDate" (0, 0),
    ConvertsToDate = "convertsToDate" (0, 0),
    ToDateTime = "toDateTime" (0, 0),
    ConvertsToDateTime = "convertsToDateTime" (0, 0),
    ToDecimal = "toDecimal" (0, 0),
    ConvertsToDecimal = "convertsToDecimal" (0, 0),
    ToQuantity = "toQuantity" (0, 1),
    ConvertsToQuantity = "convertsToQuantity" (0, 1),
    ToString = "toString" (0, 0),
    ConvertsToString = "convertsToString" (0, 0),
    ToTime = "toTime" (0, 0),
    ConvertsToTime = "convertsToTime" (0, 0),
    IndexOf = "indexOf" (1, 1),
    Substring = "substring" (1, 2),
    StartsWith = "startsWith" (1, 1),
    EndsWith = "endsWith" (1, 1),
    ContainsStr = "contains" (1, 1),
    Upper = "upper" (0, 0),
    Lower = "lower" (0, 0),
    Replace = "replace" (2, 2),
    Matches = "matches" (1, 1),
    MatchesFull = "matchesFull" (1, 1),
    ReplaceMatches = "replaceMatches" (2, 2),
    Length = "length" (0, 0),
    ToChars = "toChars" (0, 0),
    Trim = "trim" (0, 0),
    Split = "split" (1, 1),
    Join = "join" (0, 1),
    Encode = "encode" (1, 1),
    Decode = "decode" (1, 1),
    Escape = "escape" (1, 1),
    Unescape = "unescape" (1, 1),
    Abs = "abs" (0, 0),
    Ceiling = "ceiling" (0, 0),
    Exp = "exp" (0, 0),
    Floor = "floor" (0, 0),
    Ln = "ln" (0, 0),
    Log = "log" (1, 1),
    Power = "power" (1, 1),
    Round = "round" (0, 1),
    Sqrt = "sqrt" (0, 0),
    Truncate = "truncate" (0, 0),
    Children = "children" (0, 0),
    Descendants = "descendants" (0, 0),
    Trace = "trace" (1, 2),
    Now = "now" (0, 0),
    TimeOfDay = "timeOfDay" (0, 0),
    Today = "today" (0, 0),
    Is = "is" (1, 1),
    As = "as" (1, 1),
    Type = "type" (0, 0),
    Not = "not" (0, 0),
    Aggregate = "aggregate" (1, 2),
    Sort = "sort" (0, 9),
    LowBoundary = "lowBoundary" (0, 1),
    HighBoundary = "highBoundary" (0, 1),
    Precision = "precision" (0, 0),
    Comparable = "comparable" (1, 1),
    Extension = "extension" (1, 1),
    HasValue = "hasValue" (0, 0),
    GetValue = "getValue" (0, 0),
    Resolve = "resolve" (0, 0),
    MemberOf = "memberOf" (1, 1),
    ConformsTo = "conformsTo" (1, 1),
    HtmlChecks = "htmlChecks" (0, 0),
    NodesByType = "nodesByType" (1, 1),
    NodesByName = "nodesByName" (1, 1),
}

/// Parses the text of a FHIRPath number literal.
pub(crate) fn number_literal(text: &str) -> Option<Value> {
    if text.contains('.') {
        text.parse::<Decimal>().ok().map(Value::Decimal)
    } else {
        text.parse::<i64>().ok().map(Value::Integer)
    }
}
