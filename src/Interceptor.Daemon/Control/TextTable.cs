using System.Text;

namespace Interceptor.Daemon.Control;

/// <summary>
/// A plain-text table with aligned columns, as `ps` or `ss` print them: numbers right-aligned, text left-aligned,
/// two spaces between columns, no trailing blanks, so that `grep`, `sort -k` and `column` keep working on it.
/// </summary>
public sealed class TextTable
{
    private readonly string[] _headers;
    private readonly bool[] _right;
    private readonly List<string[]> _rows = [];
    private readonly List<(string Label, int First, int Count)> _groups = [];

    /// <param name="columns">Headers; a header starting with '>' is right-aligned (the '>' is not printed).</param>
    public TextTable(params string[] columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        _headers = [.. columns.Select(c => c.StartsWith('>') ? c[1..] : c)];
        _right = [.. columns.Select(c => c.StartsWith('>'))];
    }

    public int RowCount => _rows.Count;

    /// <summary>A label printed above <paramref name="count"/> columns starting at <paramref name="first"/> (e.g. "last hour").</summary>
    public TextTable Group(string label, int first, int count)
    {
        if (first < 0 || count < 1 || first + count > _headers.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(first), "the group lies outside the table's columns");
        }

        _groups.Add((label, first, count));
        return this;
    }

    public TextTable Add(params string[] cells)
    {
        ArgumentNullException.ThrowIfNull(cells);
        if (cells.Length != _headers.Length)
        {
            throw new ArgumentException($"a row has {cells.Length} cells, the table {_headers.Length} columns", nameof(cells));
        }

        // Cells hold what clients and upstreams chose: a newline or tab would break the alignment of every row below
        // it, an escape sequence or bidi override would rewrite the admin's screen. Escaped before widths are measured.
        _rows.Add([.. cells.Select(TerminalText.Escape)]);
        return this;
    }

    public string Render()
    {
        var widths = new int[_headers.Length];
        for (var i = 0; i < widths.Length; i++)
        {
            widths[i] = Math.Max(_headers[i].Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length));
        }

        // A group label wider than its columns widens its last column.
        foreach (var (label, first, count) in _groups)
        {
            var span = Enumerable.Range(first, count).Sum(i => widths[i]) + (2 * (count - 1));
            widths[first + count - 1] += Math.Max(0, label.Length - span);
        }

        var text = new StringBuilder();
        if (_groups.Count > 0)
        {
            text.AppendLine(GroupLine(widths));
        }

        text.AppendLine(Line(_headers, widths));
        foreach (var row in _rows)
        {
            text.AppendLine(Line(row, widths));
        }

        return text.ToString();
    }

    private string Line(string[] cells, int[] widths)
    {
        var line = new StringBuilder();
        for (var i = 0; i < cells.Length; i++)
        {
            if (i > 0)
            {
                line.Append("  ");
            }

            line.Append(_right[i] ? cells[i].PadLeft(widths[i]) : cells[i].PadRight(widths[i]));
        }

        return line.ToString().TrimEnd();
    }

    private string GroupLine(int[] widths)
    {
        var line = new StringBuilder();
        foreach (var (label, first, count) in _groups.OrderBy(g => g.First))
        {
            var start = widths.Take(first).Sum() + (2 * first);
            var span = Enumerable.Range(first, count).Sum(i => widths[i]) + (2 * (count - 1));
            line.Append(' ', Math.Max(0, start - line.Length));

            // Centred in a rule as wide as its columns, so the eye sees which columns it spans.
            var inner = $" {label} ";
            if (span < inner.Length + 2)
            {
                line.Append(label);
                continue;
            }

            var left = (span - inner.Length) / 2;
            line.Append('-', left).Append(inner).Append('-', span - inner.Length - left);
        }

        return line.ToString().TrimEnd();
    }
}
