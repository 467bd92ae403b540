using System.Text;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The one header the relay adds at the top of every message, so an abuse desk can name the site:
/// <c>X-Interceptor-Origin: uid=1001 user=alice; host=web1.example; id=&lt;event id&gt;</c>, with <c>; subuid=N</c>
/// after the id when the socket's uid was a subordinate uid of that user, and <c>; relay=NAME</c> when a pool relay carried it.
/// </summary>
public static class TraceHeader
{
    public const string Name = "X-Interceptor-Origin";

    public static byte[] Render(ConnectionOrigin origin, string hostName, string eventId, bool includeProcess = false, string? relay = null)
    {
        // User names come from the system's user database; still keep header syntax intact whatever they hold.
        var user = Clean(origin.User, 64);
        // The process's paths arrive percent-encoded (SocketProcess), so they cannot add fields; Clean is the backstop.
        var process = includeProcess && origin.Process is { } found ? $"; process={Clean(found, 600)}" : "";

        // After the id, so readers of the documented "uid=N user=NAME; host=...; id=..." prefix are unaffected.
        var subordinate = origin.SubordinateUid is { } real ? $"; subuid={real}" : "";
        var carrier = relay is null ? "" : $"; relay={Clean(relay, 64)}";
        return Encoding.ASCII.GetBytes($"{Name}: uid={origin.Uid} user={user}; host={hostName}; id={eventId}{subordinate}{carrier}{process}\r\n");
    }

    /// <summary>Printable ASCII only, no ';' (our separator), bounded so the line stays far below 998 bytes.</summary>
    private static string Clean(string text, int max) =>
        new(text.Where(c => c >= ' ' && c < 0x7f && c != ';').Take(max).ToArray());
}
