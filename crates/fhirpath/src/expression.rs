//! A compiled FHIRPath expression and the environment it is evaluated in.

use crate::ast::Expr;
use crate::error::Error;
use crate::eval::{Evaluator, Scope, resource_type};
use crate::item::{Item, Node, NodeType, Path};
use crate::value::DateTime;

/// A compiled FHIRPath expression. Compile once with [`Expression::parse`], then evaluate as
/// often as needed, from any number of threads.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    ast: Expr,
}

/// What an evaluation may refer to besides its input: `%resource`, `%rootResource`, user
/// variables (`%name`), the type of the input node, and the clock used by `now()`.
#[derive(Debug, Clone, Default)]
pub struct Environment<'a> {
    pub(crate) resource: Option<&'a serde_json::Value>,
    pub(crate) root_resource: Option<&'a serde_json::Value>,
    pub(crate) variables: Vec<(String, Vec<Item<'a>>)>,
    pub(crate) context_type: Option<&'static str>,
    pub(crate) strict: bool,
    pub(crate) partial_date_ranges: bool,
}

impl<'a> Environment<'a> {
    /// An environment with no resource and no variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `%resource` (and `%rootResource`, unless set separately).
    pub fn with_resource(mut self, resource: &'a serde_json::Value) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets `%rootResource`: the resource that contains `%resource` (a Bundle or a resource
    /// with contained resources).
    pub fn with_root_resource(mut self, root: &'a serde_json::Value) -> Self {
        self.root_resource = Some(root);
        self
    }

    /// Defines the user variable `%name`.
    pub fn with_variable(mut self, name: &str, value: Vec<Item<'a>>) -> Self {
        self.variables.push((name.to_string(), value));
        self
    }

    /// Makes navigation strict: naming an element the node's type does not define, naming a
    /// choice element by one of its typed JSON keys (`valueQuantity` instead of `value`), or
    /// naming a resource type the input is not, is an error instead of an empty result.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Compares dates and times of different precision as ranges, the way the Firely SDK (and
    /// so Microsoft's FHIR anonymizer) does, instead of answering empty: `@2010-01-02 = @2010`
    /// is true (the day lies in the year), `a < b` is true when some instant of `a` precedes
    /// some instant of `b`, `a >= b` when some instant of `a` is at or after some instant of
    /// `b`. Values of the same precision compare as usual. For reproducing that tool's results
    /// (its `generalize` cases); not FHIRPath.
    pub fn partial_date_ranges(mut self) -> Self {
        self.partial_date_ranges = true;
        self
    }

    /// Declares the FHIR type of the input node when it is not a resource (for example
    /// `HumanName` when evaluating on a name taken out of a Patient).
    pub fn with_context_type(mut self, type_code: &'static str) -> Self {
        self.context_type = Some(type_code);
        self
    }
}

impl Expression {
    /// Compiles FHIRPath text.
    pub fn parse(source: &str) -> Result<Expression, Error> {
        Ok(Expression {
            source: source.to_string(),
            ast: crate::parser::parse(source)?,
        })
    }

    /// The text this expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates on a resource, which is also `%resource`, `%rootResource` and `%context`.
    pub fn evaluate<'a>(&self, resource: &'a serde_json::Value) -> Result<Vec<Item<'a>>, Error> {
        self.evaluate_with(resource, &Environment::new().with_resource(resource))
    }

    /// Evaluates on `input` (`%context`) in `env`.
    pub fn evaluate_with<'a>(
        &self,
        input: &'a serde_json::Value,
        env: &Environment<'a>,
    ) -> Result<Vec<Item<'a>>, Error> {
        let ty = match env.context_type {
            Some(code) => NodeType { code, key: code },
            None => resource_type(input),
        };
        let context = Item::node(Node {
            json: Some(input),
            companion: None,
            companion_path: Path::root(),
            ty,
            path: Path::root(),
        });
        let evaluator = Evaluator {
            env,
            context: context.clone(),
            root: input,
            now: now(),
        };
        let scope = Scope {
            this: Some(context.clone()),
            index: None,
            total: None,
        };
        evaluator.eval(&self.ast, &[context], &scope)
    }
}

/// The current time in UTC, at millisecond precision.
fn now() -> DateTime {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // Day numbers count from 0000-03-01; the Unix epoch is day 719468 of that count.
    DateTime::from_millis(millis + 719_468 * 86_400_000, Some(0), 7)
}
