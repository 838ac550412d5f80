from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, _unicode_ci_compare
from django.contrib.auth.forms import PasswordResetForm as BasePasswordResetForm

User = get_user_model()


class SignInForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    error_messages = {
        "invalid_login": "That email and password do not match an account. Check both and try again.",
        "inactive": "This account is disabled. Ask an administrator to enable it.",
    }


class SignUpForm(forms.Form):
    """Sign-up asks only who you are; the password is set from the link we email, so the
    answer to this form is the same whether or not the address has an account."""

    email = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    name = forms.CharField(label="Name (optional)", max_length=150, required=False)

    def clean_email(self) -> str:
        return User.objects.normalize_email(self.cleaned_data["email"]).lower()


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “laptop script”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        choices=[
            ("", "Never"),
            ("7", "In 7 days"),
            ("30", "In 30 days"),
            ("90", "In 90 days"),
            ("365", "In a year"),
        ],
        coerce=int,
        empty_value=None,
        required=False,
    )


class PasswordResetForm(BasePasswordResetForm):
    def get_users(self, email):
        """Django's rule (active, a usable password, the same address once Unicode-
        normalized), found through the lower(email) index rather than email__iexact."""
        return (
            user
            for user in User.objects.with_email(email).filter(is_active=True)
            if user.has_usable_password() and _unicode_ci_compare(email, user.email)
        )
