//! The R4 search parameters (from the official SearchParameter bundle), by resource type.

use crate::generated::search::{BASES, PARAMS};
use crate::types;

/// The type of a search parameter (`SearchParameter.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchParamKind {
    /// `number`.
    Number,
    /// `date`.
    Date,
    /// `string`.
    String,
    /// `token`.
    Token,
    /// `reference`.
    Reference,
    /// `composite`.
    Composite,
    /// `quantity`.
    Quantity,
    /// `uri`.
    Uri,
    /// `special`.
    Special,
}

/// One search parameter as it applies to one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParam {
    /// The code used in a query (`birthdate`, `_lastUpdated`).
    pub code: &'static str,
    /// The parameter's type.
    pub kind: SearchParamKind,
    /// The FHIRPath expression: the union parts that apply to this resource type (joined
    /// with ` | `), or the whole expression when none names it (`Resource.meta.lastUpdated`);
    /// empty for parameters without one (`_text`, `_content`, `_query`).
    pub expression: &'static str,
    /// The resource types a reference parameter may point at, else empty.
    pub targets: &'static [&'static str],
}

/// The parameters defined directly on `base` (a resource type, `DomainResource` or
/// `Resource`), sorted by code.
fn own_params(base: &str) -> &'static [SearchParam] {
    match BASES.binary_search_by(|(b, _, _)| (*b).cmp(base)) {
        Ok(i) => {
            let (_, start, end) = BASES[i];
            &PARAMS[usize::from(start)..usize::from(end)]
        }
        Err(_) => &[],
    }
}

/// The search parameters of `resource_type`: its own (sorted by code), then those defined
/// on `DomainResource` and `Resource` (`_id`, `_lastUpdated`, `_text`, …).
pub fn search_params(resource_type: &str) -> impl Iterator<Item = &'static SearchParam> {
    std::iter::successors(types::intern(resource_type), |t| types::parent(t))
        .flat_map(|t| own_params(t).iter())
}

/// The search parameter `code` of `resource_type`, including inherited ones.
pub fn search_param(resource_type: &str, code: &str) -> Option<&'static SearchParam> {
    std::iter::successors(types::intern(resource_type), |t| types::parent(t)).find_map(|t| {
        let params = own_params(t);
        params
            .binary_search_by(|p| p.code.cmp(code))
            .ok()
            .map(|i| &params[i])
    })
}
