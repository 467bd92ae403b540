using System.Net;
using Interceptor.Daemon.Attribution;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>One client socket, one connection: a socket another connection holds is refused until it is given back.</summary>
[TestFixture]
public sealed class ClientSocketClaimsTests
{
    private static readonly IPEndPoint Client = IPEndPoint.Parse("127.0.0.1:40000");
    private static readonly IPEndPoint Mx = IPEndPoint.Parse("192.0.2.25:25");

    [Test]
    public void A_socket_is_held_by_one_connection_until_released()
    {
        var claims = new ClientSocketClaims();

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(4711, Client, Mx), Is.True);
            Assert.That(claims.TryClaim(4711, IPEndPoint.Parse("[::ffff:127.0.0.1]:40000"), Mx), Is.False, "the same socket, as a dual-stack listener shows it");
            Assert.That(claims.TryClaim(4712, Client, Mx), Is.True, "a different socket");
            Assert.That(claims.Count, Is.EqualTo(2));
        });

        claims.Release(4711, Client, Mx);

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(4711, Client, Mx), Is.True, "given back, as when its connection ended");
            Assert.That(claims.Count, Is.EqualTo(2));
        });
    }

    [Test]
    public void A_held_inode_number_given_again_to_a_socket_with_other_addresses_is_not_mistaken_for_it()
    {
        // Socket inode numbers are 32 bits and come round; a real collision has the very same addresses.
        var claims = new ClientSocketClaims();
        claims.TryClaim(4711, Client, Mx);

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(4711, IPEndPoint.Parse("127.0.0.1:40001"), Mx), Is.True, "another client port");
            Assert.That(claims.TryClaim(4711, Client, IPEndPoint.Parse("192.0.2.26:25")), Is.True, "another destination");
        });
    }

    [Test]
    public void Inode_zero_names_no_socket_and_is_never_held()
    {
        var claims = new ClientSocketClaims();

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(0, Client, Mx), Is.True);
            Assert.That(claims.TryClaim(0, Client, Mx), Is.True);
            Assert.That(claims.Count, Is.Zero);
        });
    }
}
