//! Accumulating view rows into Arrow record batches.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::DataType;

use super::{Cell, ViewDefinition};
use crate::error::{Error, Result};

/// A column builder of one of the view column types.
enum Builder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Builder {
    fn for_type(data_type: &DataType) -> Builder {
        match data_type {
            DataType::Boolean => Builder::Bool(BooleanBuilder::new()),
            DataType::Int64 => Builder::Int(Int64Builder::new()),
            DataType::Float64 => Builder::Float(Float64Builder::new()),
            DataType::List(_) => Builder::List(ListBuilder::new(StringBuilder::new())),
            _ => Builder::Text(StringBuilder::new()),
        }
    }

    /// Whether `cell` fits this column's type.
    fn fits(&self, cell: &Cell) -> bool {
        matches!(
            (self, cell),
            (_, Cell::Null)
                | (Builder::Bool(_), Cell::Bool(_))
                | (Builder::Int(_), Cell::Int(_))
                | (Builder::Float(_), Cell::Float(_))
                | (Builder::Text(_), Cell::Text(_))
                | (Builder::List(_), Cell::List(_))
        )
    }

    /// Appends a cell that [`fits`](Builder::fits).
    fn append(&mut self, cell: Cell) {
        match (self, cell) {
            (Builder::Bool(b), Cell::Null) => b.append_null(),
            (Builder::Int(b), Cell::Null) => b.append_null(),
            (Builder::Float(b), Cell::Null) => b.append_null(),
            (Builder::Text(b), Cell::Null) => b.append_null(),
            (Builder::List(b), Cell::Null) => b.append_null(),
            (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Int(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Float(b), Cell::Float(v)) => b.append_value(v),
            (Builder::Text(b), Cell::Text(v)) => b.append_value(v),
            (Builder::List(b), Cell::List(values)) => {
                for v in values {
                    b.values().append_value(v);
                }
                b.append(true);
            }
            _ => unreachable!("cells are checked with fits() first"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Bool(b) => b.len(),
            Builder::Int(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Text(b) => b.len(),
            Builder::List(b) => b.len(),
        }
    }
}

/// Rows of one view, column by column, plus the `_resource_id` column.
pub(crate) struct ViewRows {
    columns: Vec<Builder>,
    resource_ids: StringBuilder,
}

impl ViewRows {
    pub fn new(view: &ViewDefinition) -> ViewRows {
        ViewRows {
            columns: view
                .columns()
                .iter()
                .map(|c| Builder::for_type(&c.data_type()))
                .collect(),
            resource_ids: StringBuilder::new(),
        }
    }

    /// Appends one row from the resource `resource_id`.
    pub fn push(&mut self, view: &ViewDefinition, resource_id: &str, row: Vec<Cell>) -> Result<()> {
        if let Some(i) = (0..row.len()).find(|&i| !self.columns[i].fits(&row[i])) {
            return Err(Error::View {
                view: view.name().to_string(),
                reason: format!(
                    "column `{}`: a cell of the wrong type",
                    view.columns()[i].name
                ),
            });
        }
        for (column, cell) in self.columns.iter_mut().zip(row) {
            column.append(cell);
        }
        self.resource_ids.append_value(resource_id);
        Ok(())
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.resource_ids.len()
    }

    /// The buffered rows as a batch of the view's schema; the buffer is emptied.
    pub fn take_batch(&mut self, view: &ViewDefinition) -> RecordBatch {
        debug_assert!(self.columns.iter().all(|c| c.len() == self.len()));
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Builder::finish).collect();
        arrays.push(Arc::new(self.resource_ids.finish()));
        RecordBatch::try_new(view.schema(), arrays).expect("view columns match the schema")
    }
}
