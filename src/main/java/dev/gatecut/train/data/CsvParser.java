package dev.gatecut.train.data;

import dev.gatecut.errors.DataException;
import java.util.ArrayList;
import java.util.List;

/**
 * RFC 4180 records: fields separated by a delimiter (comma, or tab for TSV), records by CRLF or LF;
 * a field in double quotes may hold delimiters, line breaks and doubled quotes ({@code ""}).
 * Deviations, for files written by hand: completely empty lines are skipped, and a quote inside an
 * unquoted field is taken literally. Text after a closing quote and an unterminated quote are errors.
 */
final class CsvParser {
    /** One record and the line it starts on (1-based). */
    record Row(int line, List<String> fields) {
    }

    private CsvParser() {
    }

    static List<Row> parse(String text, char delimiter, String file) {
        List<Row> rows = new ArrayList<>();
        int n = text.length();
        int i = 0;
        int line = 1;
        while (i < n) {
            char c = text.charAt(i);
            if (c == '\n') {
                line++;
                i++;
                continue;
            }
            if (c == '\r' && i + 1 < n && text.charAt(i + 1) == '\n') {
                line++;
                i += 2;
                continue;
            }
            int recordLine = line;
            List<String> fields = new ArrayList<>();
            while (true) {
                String field;
                if (i < n && text.charAt(i) == '"') {
                    int quoteLine = line;
                    StringBuilder sb = new StringBuilder();
                    i++;
                    while (true) {
                        if (i >= n) {
                            throw new DataException(file + ":" + quoteLine + ": field " + (fields.size() + 1)
                                    + ": the quoted field is not closed (a \" is missing)");
                        }
                        char q = text.charAt(i);
                        if (q == '"') {
                            if (i + 1 < n && text.charAt(i + 1) == '"') {
                                sb.append('"');
                                i += 2;
                                continue;
                            }
                            i++;
                            break;
                        }
                        if (q == '\n') {
                            line++;
                        }
                        sb.append(q);
                        i++;
                    }
                    boolean crlf = i + 1 < n && text.charAt(i) == '\r' && text.charAt(i + 1) == '\n';
                    if (i < n && text.charAt(i) != delimiter && text.charAt(i) != '\n' && !crlf) {
                        throw new DataException(file + ":" + line + ": field " + (fields.size() + 1)
                                + ": text after the closing quote (write a quote inside a quoted field as \"\")");
                    }
                    field = sb.toString();
                } else {
                    int start = i;
                    while (i < n && text.charAt(i) != delimiter && text.charAt(i) != '\n') {
                        i++;
                    }
                    int end = i;
                    if ((i >= n || text.charAt(i) == '\n') && end > start && text.charAt(end - 1) == '\r') {
                        end--;
                    }
                    field = text.substring(start, end);
                }
                fields.add(field);
                if (i < n && text.charAt(i) == delimiter) {
                    i++;
                    continue;
                }
                if (i < n && text.charAt(i) == '\r') {
                    i++;
                }
                if (i < n && text.charAt(i) == '\n') {
                    line++;
                    i++;
                }
                break;
            }
            rows.add(new Row(recordLine, fields));
        }
        return rows;
    }
}
