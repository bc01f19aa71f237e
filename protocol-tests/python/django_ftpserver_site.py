"""A real django-ftpserver site for the import tests: Django with django_ftpserver, migrated into
an SQLite database, its FTP groups and accounts made through the Django ORM with passwords
hashed by Django's own hashers, and the same data dumped as `manage.py dumpdata auth.user
django_ftpserver` would.

    django_ftpserver_site.py --db FILE --dump FILE --homes DIR

Prints one JSON line: every account's name and clear-text password, for the tests to log in with.
Needs `pip install django django-ftpserver bcrypt`.
"""

import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--dump", required=True)
    parser.add_argument("--homes", required=True)
    args = parser.parse_args()

    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": args.db}},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_ftpserver",
        ],
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
            "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
            "django.contrib.auth.hashers.BCryptPasswordHasher",
            "django.contrib.auth.hashers.ScryptPasswordHasher",
        ],
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django_ftpserver.models import FTPUserAccount, FTPUserGroup

    call_command("migrate", verbosity=0)
    staff = FTPUserGroup.objects.create(
        name="staff", permission="elradfmw", home_dir=args.homes + "/{username}"
    )
    readers = FTPUserGroup.objects.create(name="readers", permission="elr", home_dir=None)
    # name, password, hasher, group, own home, active
    people = [
        ("alice", "alice pass 1", "pbkdf2_sha256", staff, None, True),
        ("bob", "bob-pass-2", "bcrypt_sha256", readers, args.homes + "/shared/bob", True),
        ("carol", "carol pass 3", "scrypt", staff, None, False),
        ("dave", None, None, readers, args.homes + "/dave", True),
        ("erin", "erin-pass-5", "bcrypt", staff, None, True),
        ("frank", "frank-pass-6", "pbkdf2_sha1", staff, args.homes + "/frank-own", True),
    ]
    passwords = {}
    for name, password, hasher, group, home, active in people:
        user = User(username=name, is_active=active)
        if password is None:
            user.set_unusable_password()
        else:
            user.password = make_password(password, hasher=hasher)
            passwords[name] = password
        user.save()
        FTPUserAccount.objects.create(user=user, group=group, home_dir=home)
    # A Django user with no FTP account is not an FTP user.
    User.objects.create(username="webonly", password=make_password("web"))
    with open(args.dump, "w", encoding="utf-8") as out:
        call_command("dumpdata", "auth.user", "django_ftpserver", stdout=out)
    json.dump({"passwords": passwords}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
