//! CSV exports: UTF-8 with a byte-order mark (so Excel reads Chinese correctly), quoted
//! as RFC 4180 requires, and with formula injection neutralised.

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A cell that a spreadsheet would run as a formula (`= + - @`, or a tab or carriage
/// return that some programs skip before one) gets a leading `'`, so it shows as text.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// A whole CSV document: the BOM, the header row, then the rows.
pub fn document<R, C>(header: &[String], rows: R) -> anyhow::Result<Vec<u8>>
where
    R: IntoIterator<Item = Vec<C>>,
    C: AsRef<str>,
{
    let mut out = BOM.to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        w.write_record(header.iter().map(|h| neutralise(h).into_owned()))?;
        for row in rows {
            w.write_record(row.iter().map(|c| neutralise(c.as_ref()).into_owned()))?;
        }
        w.flush()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_quotes_doubled() {
        let doc = document(
            &["名称".to_string(), "备注".to_string()],
            vec![
                vec!["=HYPERLINK(\"x\")", "a,b"],
                vec!["+1", "-2"],
                vec!["@SUM(A1)", "line\nbreak"],
                vec!["plain", "说\"明\""],
            ],
        )
        .expect("csv");
        assert!(doc.starts_with(BOM));
        let text = std::str::from_utf8(&doc[3..]).expect("utf-8");
        assert_eq!(
            text,
            "名称,备注\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",\"a,b\"\r\n\
             '+1,'-2\r\n\
             '@SUM(A1),\"line\nbreak\"\r\n\
             plain,\"说\"\"明\"\"\"\r\n"
        );
    }
}
