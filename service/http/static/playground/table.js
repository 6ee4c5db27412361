// Pasted or uploaded text -> columns of a table (one value per line, or CSV/TSV with or without a header).
const DELIMITERS = [",", ";", "\t"];

function cells(line, delimiter) {
  return line.split(delimiter).map((cell) => cell.trim().replace(/^"(.*)"$/, "$1"));
}

function isNumber(text) {
  return text !== "" && Number.isFinite(Number(text));
}

export function parseTable(text) {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (!lines.length) throw new Error("No values found.");
  const delimiter = DELIMITERS.find((d) => lines[0].includes(d)) || "\n";
  const rows = lines.map((line) => cells(line, delimiter));
  const width = Math.max(...rows.map((row) => row.length));
  const hasHeader = rows[0].some((cell) => cell !== "" && !isNumber(cell));
  const header = hasHeader ? rows.shift() : [];
  const columns = [];
  for (let j = 0; j < width; j++) {
    const name = header[j] || `column ${j + 1}`;
    const raw = rows.map((row) => (row[j] === undefined ? "" : row[j]));
    columns.push({
      name,
      values: raw.filter((cell) => cell !== ""),
      // Refuse anything that is not a number instead of skipping it: a skipped value shifts the series.
      numbers() {
        return raw.map((cell, i) => {
          if (!isNumber(cell)) {
            throw new Error(`Column "${name}", data row ${i + 1}: "${cell}" is not a number.`);
          }
          return Number(cell);
        });
      },
    });
  }
  return { columns };
}
