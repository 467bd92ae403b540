using System.Text;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The one header the relay adds at the top of every message, so an abuse desk can name the site:
/// <c>X-Interceptor-Origin: uid=1001 user=alice; host=web1.example; id=&lt;event id&gt;</c>.
/// </summary>
public static class TraceHeader
{
    public const string Name = "X-Interceptor-Origin";

    public static byte[] Render(ConnectionOrigin origin, string hostName, string eventId)
    {
        // User names come from the system's user database; still keep header syntax intact whatever they hold.
        var user = new string(origin.User.Where(c => c > ' ' && c < 0x7f && c != ';').ToArray());
        return Encoding.ASCII.GetBytes($"{Name}: uid={origin.Uid} user={user}; host={hostName}; id={eventId}\r\n");
    }
}
