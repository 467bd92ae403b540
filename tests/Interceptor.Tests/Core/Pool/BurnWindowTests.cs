using Interceptor.Core.Pool;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Pool;

public class BurnWindowTests
{
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));

    [Test]
    public void The_threshold_is_reached_only_by_hits_inside_the_window()
    {
        var window = new BurnWindow(3, TimeSpan.FromMinutes(60), _clock);

        Assert.That(window.Record("relay1"), Is.False);
        _clock.Now += TimeSpan.FromMinutes(30);
        Assert.That(window.Record("relay1"), Is.False);
        _clock.Now += TimeSpan.FromMinutes(31); // the first hit is now 61 minutes old
        Assert.That(window.Record("relay1"), Is.False, "the first hit slid out");
        Assert.That(window.Count("relay1"), Is.EqualTo(2));
        _clock.Now += TimeSpan.FromMinutes(1);
        Assert.That(window.Record("relay1"), Is.True);
    }

    [Test]
    public void Relays_are_counted_apart_and_reset_forgets_one()
    {
        var window = new BurnWindow(2, TimeSpan.FromMinutes(5), _clock);
        window.Record("relay1");
        window.Record("relay2");
        window.Reset("relay2");

        Assert.That(window.Record("relay1"), Is.True);
        Assert.That(window.Record("relay2"), Is.False);
    }

    [Test]
    public void At_most_threshold_times_are_kept_however_many_hits_arrive()
    {
        var window = new BurnWindow(5, TimeSpan.FromMinutes(60), _clock);
        for (var i = 0; i < 10_000; i++)
        {
            window.Record("relay1");
        }

        Assert.That(window.Count("relay1"), Is.EqualTo(5));
    }

    private static BurnSource From(uint user, string network = "192.0.2.0/24") => new(user, network);

    [Test]
    public void A_key_that_needs_two_users_is_never_reached_by_one_however_many_hits()
    {
        var window = new BurnWindow(3, TimeSpan.FromMinutes(60), _clock);

        for (var i = 0; i < 10; i++)
        {
            Assert.That(window.Record("@host", From(1001), minUsers: 2, minNetworks: 1), Is.False);
        }

        Assert.That(window.Count("@host"), Is.EqualTo(3), "one source's hits are kept up to the threshold");
        Assert.That(window.Record("@host", From(1002), minUsers: 2, minNetworks: 1), Is.True);
    }

    [Test]
    public void One_user_refused_by_a_thousand_networks_keeps_her_latest_sixteen_and_leaves_room_for_the_others()
    {
        // Before: her 1,024 networks filled the key, and a real block refusing bob's and carol's mail went uncounted.
        var window = new BurnWindow(2, TimeSpan.FromMinutes(60), _clock);

        for (var i = 0; i < 1100; i++)
        {
            window.Record("@host", From(1001, $"10.{i / 256}.{i % 256}.0/24"), minUsers: 2, minNetworks: 2);
            _clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.That(window.Count("@host"), Is.EqualTo(16), "her latest sixteen networks");
        Assert.That(window.Record("@host", From(1002, "198.51.100.0/24"), minUsers: 2, minNetworks: 2), Is.False);
        Assert.That(window.Record("@host", From(1003, "198.51.100.0/24"), minUsers: 2, minNetworks: 2), Is.False, "one network refused two users");
        Assert.That(window.Record("@host", From(1002, "203.0.113.0/24"), minUsers: 2, minNetworks: 2), Is.False);
        Assert.That(window.Record("@host", From(1003, "203.0.113.0/24"), minUsers: 2, minNetworks: 2), Is.True, "two networks, two users each");
    }

    [Test]
    public void Shared_each_source_counts_at_most_its_share_of_the_threshold()
    {
        // Threshold 5, two users: a share is 3 (rounded up); seven users: 1.
        var window = new BurnWindow(5, TimeSpan.FromMinutes(60), _clock);

        for (var i = 0; i < 10; i++)
        {
            Assert.That(window.Record("relay1", From(1001, ""), minUsers: 2, minNetworks: 1, shareEach: true), Is.False);
        }

        Assert.That(window.Count("relay1"), Is.EqualTo(3));
        Assert.That(window.Record("relay1", From(1002, ""), minUsers: 2, minNetworks: 1, shareEach: true), Is.False, "3 + 1");
        Assert.That(window.Record("relay1", From(1002, ""), minUsers: 2, minNetworks: 1, shareEach: true), Is.True, "3 + 2");
        for (var uid = 2001u; uid < 2005; uid++)
        {
            Assert.That(window.Record("relay2", From(uid, ""), minUsers: 7, minNetworks: 1, shareEach: true), Is.False);
            Assert.That(window.Record("relay2", From(uid, ""), minUsers: 7, minNetworks: 1, shareEach: true), Is.False, "one a user: 5 users needed");
        }

        Assert.That(window.Record("relay2", From(2005, ""), minUsers: 7, minNetworks: 1, shareEach: true), Is.True, "never more users than the threshold");
    }

    [Test]
    public void A_key_that_needs_two_networks_is_not_reached_by_two_users_behind_one()
    {
        var window = new BurnWindow(2, TimeSpan.FromMinutes(60), _clock);

        Assert.That(window.Record("@host", From(1001), minUsers: 2, minNetworks: 2), Is.False);
        Assert.That(window.Record("@host", From(1002), minUsers: 2, minNetworks: 2), Is.False, "two users, one network");
        Assert.That(window.Record("@host", From(1001, "2001:db8::/48"), minUsers: 2, minNetworks: 2), Is.False,
            "two users, two networks, but the second refused only one user's mail (her own MX's IPv6 address)");
        Assert.That(window.Record("@host", From(1002, "2001:db8::/48"), minUsers: 2, minNetworks: 2), Is.True);
    }

    [Test]
    public void A_second_user_counts_only_while_the_first_users_hits_are_inside_the_window()
    {
        var window = new BurnWindow(2, TimeSpan.FromMinutes(60), _clock);
        window.Record("@host", From(1001), minUsers: 2, minNetworks: 1);
        _clock.Now += TimeSpan.FromMinutes(61);

        Assert.That(window.Record("@host", From(1002), minUsers: 2, minNetworks: 1), Is.False, "1001's hit slid out");
        Assert.That(window.Record("@host", From(1001), minUsers: 2, minNetworks: 1), Is.True);
    }

    [Test]
    public void More_users_or_networks_than_the_threshold_are_never_required()
    {
        var window = new BurnWindow(1, TimeSpan.FromMinutes(60), _clock);

        Assert.That(window.Record("@host", From(1001), minUsers: 2, minNetworks: 2), Is.True, "a threshold of 1 is reached by one reply");
    }

    [TestCase("192.0.2.77", "192.0.2.0/24")]
    [TestCase("::ffff:192.0.2.77", "192.0.2.0/24")]
    [TestCase("2001:db8:1:2:3::25", "2001:db8:1::/48")]
    public void A_network_is_the_ipv4_24_or_the_ipv6_48(string address, string network) =>
        Assert.That(BurnSource.NetworkOf(System.Net.IPAddress.Parse(address)), Is.EqualTo(network));
}
