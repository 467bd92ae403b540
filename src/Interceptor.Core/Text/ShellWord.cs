using System.Buffers;

namespace Interceptor.Core.Text;

/// <summary>
/// A path or name as one word of a POSIX shell command that an admin pastes from a message ("run chown X PATH"): left as
/// it is when it holds only characters no shell treats specially, else in single quotes. A configured path with a space,
/// a semicolon or a <c>$(…)</c> in it then names that one file instead of running something else.
/// </summary>
public static class ShellWord
{
    private static readonly SearchValues<char> Plain = SearchValues.Create(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._+-,:@%=");

    public static string Quote(string word)
    {
        if (word.Length > 0 && !word.AsSpan().ContainsAnyExcept(Plain))
        {
            return word;
        }

        // Inside single quotes nothing is special but the quote itself, which closes, is escaped, and reopens: '\''.
        return "'" + word.Replace("'", @"'\''", StringComparison.Ordinal) + "'";
    }
}
