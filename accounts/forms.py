from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm

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


class SignUpForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")
        widgets = {"email": forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})}
        labels = {"name": "Name (optional)"}

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email already exists. Sign in instead, or use another address."
            )
        return email


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. “laptop script”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
