using System.Net;

namespace Interceptor.Smtp.Session;

/// <summary>Who is behind a redirected connection and where it was going: what attribution found.</summary>
public sealed record ConnectionOrigin(uint Uid, string User, IPEndPoint Client, IPEndPoint OriginalDestination)
{
    /// <summary>The process behind the socket, when it was found in time (best effort, off the hot path).</summary>
    public string? Process { get; set; }

    /// <summary>
    /// The socket's real uid when it is a subordinate uid of <see cref="Uid"/> (/etc/subuid): the connection is
    /// charged to the owner, and this says which of the owner's uids it really was.
    /// </summary>
    public uint? SubordinateUid { get; init; }
}
