//! A job's manifest rows written as a file: JSON Lines (each row's own
//! form, the bucket's `manifest.jsonl` byte for byte), CSV (a header of the
//! column names, then a record per row) or Parquet (one column per cell,
//! every one optional, in row groups of [`ROW_GROUP`] rows). CSV and
//! Parquet take their columns from [`ManifestRow::cells`], so a column
//! added to the row is added to both.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use chrono::SecondsFormat;
use fresco_core::manifest::{Cell, ManifestRow, Value};
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::Type;

/// Rows per Parquet row group: what the Parquet writer holds in memory.
pub const ROW_GROUP: usize = 10_000;

/// The formats `fresco manifest` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

/// Writes rows one at a time in one [`Format`].
pub enum TableWriter<W: Write + Send> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>, bool),
    Parquet(Box<ParquetTable<W>>),
}

impl<W: Write + Send> TableWriter<W> {
    pub fn new(format: Format, out: W) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Jsonl => TableWriter::Jsonl(out),
            Format::Csv => TableWriter::Csv(Box::new(csv::Writer::from_writer(out)), false),
            Format::Parquet => TableWriter::Parquet(Box::new(ParquetTable::new(out)?)),
        })
    }

    pub fn write(&mut self, row: &ManifestRow) -> anyhow::Result<()> {
        match self {
            TableWriter::Jsonl(out) => {
                out.write_all(row.jsonl()?.as_bytes())?;
                out.write_all(b"\n")?;
            }
            TableWriter::Csv(out, headed) => {
                let cells = row.cells();
                if !*headed {
                    out.write_record(cells.iter().map(|c| c.name))?;
                    *headed = true;
                }
                out.write_record(cells.iter().map(|c| csv_field(&c.value)))?;
            }
            TableWriter::Parquet(table) => table.push(row)?,
        }
        Ok(())
    }

    /// Writes what is buffered and the format's ending (Parquet's footer).
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            TableWriter::Jsonl(mut out) => out.flush()?,
            TableWriter::Csv(mut out, headed) => {
                if !headed {
                    out.write_record(ManifestRow::default().cells().iter().map(|c| c.name))?;
                }
                out.flush()?;
            }
            TableWriter::Parquet(table) => table.finish()?,
        }
        Ok(())
    }
}

/// A value as a CSV field: empty when absent; times as in the JSON form.
pub fn csv_field(value: &Value) -> String {
    match value {
        Value::Text(v) => v.clone().unwrap_or_default(),
        Value::Unsigned(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        Value::Float(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        Value::Double(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        Value::Flag(v) => v.map(|v| v.to_string()).unwrap_or_default(),
        Value::Time(v) => v
            .map(|v| v.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .unwrap_or_default(),
    }
}

/// Rows on their way into a Parquet file, a row group at a time.
pub struct ParquetTable<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    rows: Vec<Vec<Cell>>,
}

impl<W: Write + Send> ParquetTable<W> {
    fn new(out: W) -> anyhow::Result<Self> {
        let schema = Arc::new(parquet_schema()?);
        let properties = Arc::new(WriterProperties::builder().build());
        Ok(Self {
            writer: SerializedFileWriter::new(out, schema, properties)?,
            rows: Vec::new(),
        })
    }

    fn push(&mut self, row: &ManifestRow) -> anyhow::Result<()> {
        self.rows.push(row.cells());
        if self.rows.len() >= ROW_GROUP {
            self.flush_group()?;
        }
        Ok(())
    }

    fn flush_group(&mut self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            let values: Vec<&Value> = self.rows.iter().map(|cells| &cells[index].value).collect();
            write_column(&mut column, &values)
                .with_context(|| format!("writing Parquet column {index}"))?;
            column.close()?;
            index += 1;
        }
        group.close()?;
        self.rows.clear();
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.flush_group()?;
        self.writer.close()?;
        Ok(())
    }
}

/// The Parquet schema of a manifest: a column per cell, each optional.
fn parquet_schema() -> anyhow::Result<Type> {
    let fields = ManifestRow::default()
        .cells()
        .iter()
        .map(|cell| column_type(cell).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Type::group_type_builder("manifest")
        .with_fields(fields)
        .build()?)
}

fn column_type(cell: &Cell) -> anyhow::Result<Type> {
    let (physical, logical) = match cell.value {
        Value::Text(_) => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        Value::Unsigned(_) => (PhysicalType::INT64, Some(LogicalType::integer(64, false))),
        Value::Float(_) => (PhysicalType::FLOAT, None),
        Value::Double(_) => (PhysicalType::DOUBLE, None),
        Value::Flag(_) => (PhysicalType::BOOLEAN, None),
        Value::Time(_) => (
            PhysicalType::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
    };
    Ok(Type::primitive_type_builder(cell.name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()?)
}

/// Definition levels of optional values: 1 present, 0 absent.
fn levels<T>(values: &[Option<T>]) -> Vec<i16> {
    values.iter().map(|v| i16::from(v.is_some())).collect()
}

/// Writes one column's values, the present ones with their levels.
fn write_typed<T: parquet::data_type::DataType>(
    column: &mut SerializedColumnWriter<'_>,
    values: Vec<Option<T::T>>,
) -> anyhow::Result<()> {
    let defs = levels(&values);
    let present: Vec<T::T> = values.into_iter().flatten().collect();
    column
        .typed::<T>()
        .write_batch(&present, Some(&defs), None)?;
    Ok(())
}

fn write_column(column: &mut SerializedColumnWriter<'_>, values: &[&Value]) -> anyhow::Result<()> {
    let Some(first) = values.first() else {
        return Ok(());
    };
    match first {
        Value::Text(_) => write_typed::<ByteArrayType>(
            column,
            values
                .iter()
                .map(|v| match v {
                    Value::Text(t) => t.as_deref().map(ByteArray::from),
                    _ => None,
                })
                .collect(),
        ),
        Value::Unsigned(_) => write_typed::<Int64Type>(
            column,
            values
                .iter()
                .map(|v| match v {
                    // Parquet keeps an unsigned 64-bit integer in INT64's bits.
                    Value::Unsigned(n) => n.map(|n| n as i64),
                    _ => None,
                })
                .collect(),
        ),
        Value::Float(_) => write_typed::<FloatType>(
            column,
            values
                .iter()
                .map(|v| match v {
                    Value::Float(f) => *f,
                    _ => None,
                })
                .collect(),
        ),
        Value::Double(_) => write_typed::<DoubleType>(
            column,
            values
                .iter()
                .map(|v| match v {
                    Value::Double(f) => *f,
                    _ => None,
                })
                .collect(),
        ),
        Value::Flag(_) => write_typed::<BoolType>(
            column,
            values
                .iter()
                .map(|v| match v {
                    Value::Flag(b) => *b,
                    _ => None,
                })
                .collect(),
        ),
        Value::Time(_) => write_typed::<Int64Type>(
            column,
            values
                .iter()
                .map(|v| match v {
                    Value::Time(t) => t.map(|t| t.timestamp_micros()),
                    _ => None,
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use fresco_core::manifest::ManifestError;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;

    fn rows() -> Vec<ManifestRow> {
        let at = chrono::DateTime::from_timestamp(1_765_000_000, 123_456_000).expect("a time");
        let image = ManifestRow {
            job_id: "j".into(),
            task_id: "t".into(),
            state: "succeeded".into(),
            image_index: Some(0),
            prompt: "a \"red\", circle\nover two lines".into(),
            task_seed: u64::MAX,
            seed: Some(u64::MAX),
            guidance: 4.5,
            key: Some("j/t/1/0.png".into()),
            queued_at: Some(at),
            sampling_seconds: Some(0.25),
            ..ManifestRow::default()
        };
        let failed = ManifestRow {
            task_index: 1,
            state: "failed".into(),
            errors: vec![ManifestError {
                attempt: 1,
                worker: "w".into(),
                kind: "request".into(),
                message: "bad".into(),
                at: Some(at),
            }],
            karras_sigmas: Some(true),
            ..ManifestRow::default()
        };
        vec![image, failed]
    }

    fn written(format: Format, rows: &[ManifestRow]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = TableWriter::new(format, &mut out).expect("a writer");
        for row in rows {
            writer.write(row).expect("written");
        }
        writer.finish().expect("finished");
        out
    }

    #[test]
    fn csv_holds_every_cell_of_every_row() {
        let rows = rows();
        let bytes = written(Format::Csv, &rows);
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<String> = reader
            .headers()
            .expect("a header")
            .iter()
            .map(String::from)
            .collect();
        let names: Vec<&str> = rows[0].cells().iter().map(|c| c.name).collect();
        assert_eq!(header, names);
        let records: Vec<csv::StringRecord> =
            reader.records().map(|r| r.expect("a record")).collect();
        assert_eq!(records.len(), 2);
        for (record, row) in records.iter().zip(&rows) {
            let fields: Vec<String> = row.cells().iter().map(|c| csv_field(&c.value)).collect();
            assert_eq!(record.iter().collect::<Vec<_>>(), fields);
        }
    }

    #[test]
    fn parquet_reads_back_cell_for_cell() {
        let rows = rows();
        let bytes = written(Format::Parquet, &rows);
        let mut file = tempfile::tempfile().expect("a temp file");
        file.write_all(&bytes).expect("written");
        let reader = SerializedFileReader::new(file).expect("a Parquet file");
        let read: Vec<_> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|r| r.expect("a row"))
            .collect();
        assert_eq!(read.len(), 2);
        let first: Vec<(String, Field)> = read[0]
            .get_column_iter()
            .map(|(name, field)| (name.clone(), field.clone()))
            .collect();
        let get = |name: &str| {
            first
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| f.clone())
        };
        assert_eq!(get("seed"), Some(Field::ULong(u64::MAX)));
        assert_eq!(get("prompt"), Some(Field::Str(rows[0].prompt.clone())));
        assert_eq!(get("guidance"), Some(Field::Float(4.5)));
        assert_eq!(get("image_index"), Some(Field::ULong(0)));
        assert_eq!(get("sha256"), Some(Field::Null));
        assert_eq!(
            get("queued_at"),
            Some(Field::TimestampMicros(1_765_000_000_123_456))
        );
        assert_eq!(first.len(), rows[0].cells().len());
    }
}
