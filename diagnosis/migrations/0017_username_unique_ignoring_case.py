from django.db import migrations


class Migration(migrations.Migration):
    """Usernames unique in any letter case, in the database too: the forms and services refuse a
    taken or look-alike name with a sentence (diagnosis.usernames), and this index holds when two
    requests race or an account is made some other way."""

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("diagnosis", "0016_account_links_and_signin_audit"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX diagnosis_username_unique_ignoring_case ON auth_user (LOWER(username))",
            reverse_sql="DROP INDEX diagnosis_username_unique_ignoring_case",
        ),
    ]
